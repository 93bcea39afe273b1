-- Leaf indexes move out of audit_event into an insert-only table.
--
-- Integration used to give each pending audit_event row its leaf index with an UPDATE: a new
-- version of a wide row and an entry in each of its indexes, ~23 us per leaf and most of the
-- integration time. Now audit_event is written once and never changed; the outbox is a narrow
-- audit_pending row (filled by a statement trigger, so no writer can forget it) that the
-- integrator deletes as it appends the narrow audit_leaf row that gives the leaf its index.
--
-- A leaf is therefore: an audit_event row (its bytes) plus exactly one of an audit_pending row
-- (waiting) or an audit_leaf row (integrated). `consent audit verify` checks all three; no
-- foreign keys here, as their per-row checks would cost integration more than the rest of it.

create table audit_pending (
    log_id bigint not null,
    -- Arrival order within the log; the integrator takes the oldest first.
    event_id bigint not null,
    leaf_hash bytea not null check (octet_length(leaf_hash) = 32),
    primary key (log_id, event_id)
);
comment on table audit_pending is
    'The outbox: leaves written but not yet integrated (the integrator deletes them).';

create table audit_leaf (
    log_id bigint not null,
    -- Gapless from 0 per log, in integration order.
    leaf_index bigint not null,
    event_id bigint not null unique,
    -- Copy of audit_event.leaf_hash, so proofs read this narrow table only.
    leaf_hash bytea not null check (octet_length(leaf_hash) = 32),
    primary key (log_id, leaf_index)
);
comment on table audit_leaf is 'Integrated leaves: the index of each audit_event in its tree.';

-- Carry over what earlier versions stored.
insert into audit_leaf (log_id, leaf_index, event_id, leaf_hash)
select log_id, leaf_index, event_id, leaf_hash from audit_event where leaf_index is not null;
insert into audit_pending (log_id, event_id, leaf_hash)
select log_id, event_id, leaf_hash from audit_event where leaf_index is null;

drop trigger audit_event_guard on audit_event;
drop function audit_event_guard();
alter table audit_event drop column leaf_index;  -- with its unique key and pending index

-- Every new audit_event row enters the outbox in the statement that inserts it. SECURITY
-- DEFINER: the application role cannot touch audit_pending itself.
create function audit_event_enqueue() returns trigger
    language plpgsql security definer set search_path = pg_catalog, public as $$
begin
    insert into audit_pending (log_id, event_id, leaf_hash)
    select log_id, event_id, leaf_hash from new_events;
    return null;
end
$$;
revoke all on function audit_event_enqueue() from public;
create trigger audit_event_enqueue after insert on audit_event
    referencing new table as new_events
    for each statement execute function audit_event_enqueue();

-- audit_event and audit_leaf are append-only; audit_pending rows only leave by integration,
-- which the owner does (the application role has no rights on it).
create function audit_reject_change() returns trigger
    language plpgsql as $$
begin
    raise exception '% is append-only', tg_table_name using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_event_append_only before update or delete on audit_event
    for each row execute function audit_reject_change();
create trigger audit_leaf_append_only before update or delete on audit_leaf
    for each row execute function audit_reject_change();
create trigger audit_leaf_no_truncate before truncate on audit_leaf
    for each statement execute function audit_no_truncate();

alter table audit_leaf enable row level security;
alter table audit_pending enable row level security;
create policy tenant_isolation on audit_leaf
    using (log_id in (select log_id from audit_log where tenant_id = app_tenant_id()));
grant select on audit_leaf to consent_app;

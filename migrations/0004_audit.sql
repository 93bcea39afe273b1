-- Tamper-evident audit log: one RFC 6962 Merkle tree per tenant. Writers append leaves to an
-- outbox (audit_event with leaf_index null) in the same transaction as the change they record;
-- one integrator assigns gapless leaf indexes, stores completed subtree hashes and signs
-- C2SP checkpoints. Leaves hold only pseudonymous material (random subject tokens, digests of
-- encrypted evidence), so erasing a subject leaves every proof valid.

create table audit_log (
    log_id bigint generated always as identity primary key,
    tenant_id uuid not null unique references tenant (id),
    -- Checkpoint origin line, e.g. consent.local/audit/<tenant id>.
    origin text not null unique,
    -- Number of integrated leaves.
    tree_size bigint not null default 0,
    -- RFC 6962 root of the first tree_size leaves (SHA-256 of "" when empty).
    root_hash bytea not null default '\xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    -- Roots of the perfect subtrees of the set bits of tree_size, largest first.
    frontier bytea[] not null default '{}',
    updated_at timestamptz not null default now()
);
comment on table audit_log is 'One Merkle tree per tenant; the integrator locks this row.';

create table audit_event (
    -- Arrival order (gaps allowed); never the leaf index.
    event_id bigint generated always as identity primary key,
    event_uuid uuid not null unique,
    log_id bigint not null references audit_log (log_id),
    tenant_id uuid not null references tenant (id),
    -- Assigned by the integrator: gapless, in integration order. Null while pending.
    leaf_index bigint,
    -- Canonical leaf bytes (RFC 8785 subset), stored verbatim and served as is.
    leaf_bytes bytea not null,
    -- SHA-256(0x00 || leaf_bytes).
    leaf_hash bytea not null check (octet_length(leaf_hash) = 32),
    -- Leaf kind (consent.recorded, decision.made, ...), for filtering.
    kind text not null,
    -- The subject this leaf is about (a random id; not part of the leaf), for the activity view.
    subject_id uuid,
    recorded_at timestamptz not null default clock_timestamp(),
    unique (log_id, leaf_index)
);
create index audit_event_pending on audit_event (log_id, event_id) where leaf_index is null;
create index audit_event_subject on audit_event (tenant_id, subject_id, event_id desc)
    where subject_id is not null;

create table audit_node (
    log_id bigint not null references audit_log (log_id),
    -- A perfect subtree of 2^level leaves covering [idx * 2^level, (idx + 1) * 2^level).
    level smallint not null check (level >= 1),
    idx bigint not null,
    hash bytea not null check (octet_length(hash) = 32),
    primary key (log_id, level, idx)
);

create table audit_checkpoint (
    log_id bigint not null references audit_log (log_id),
    tree_size bigint not null,
    root_hash bytea not null check (octet_length(root_hash) = 32),
    -- The signed note, verbatim (C2SP tlog-checkpoint + signed-note, Ed25519).
    note text not null,
    signed_at timestamptz not null default now(),
    primary key (log_id, tree_size)
);

create table audit_evidence (
    event_uuid uuid primary key references audit_event (event_uuid),
    tenant_id uuid not null references tenant (id),
    -- The event's personal details, AES-256-GCM under the subject's data key; the leaf carries
    -- SHA-256 of this ciphertext. Unreadable once the subject's key is destroyed.
    ciphertext bytea not null
);

create table audit_subject_token (
    tenant_id uuid not null references tenant (id),
    subject_id uuid not null,
    -- 32 random bytes: the only reference to a subject that enters leaves. Deleted at erasure,
    -- after which the leaves cannot be tied to the person.
    token bytea not null unique check (octet_length(token) = 32),
    primary key (tenant_id, subject_id)
);

-- Defence in depth: leaves can only be integrated (leaf_index null -> value), never changed.
create function audit_event_guard() returns trigger
    language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        raise exception 'audit_event is append-only' using errcode = 'insufficient_privilege';
    end if;
    if old.leaf_index is not null or new.leaf_index is null
       or new.leaf_bytes <> old.leaf_bytes or new.leaf_hash <> old.leaf_hash
       or new.event_uuid <> old.event_uuid or new.log_id <> old.log_id then
        raise exception 'audit_event rows only receive their leaf index'
            using errcode = 'insufficient_privilege';
    end if;
    return new;
end
$$;
create trigger audit_event_guard before update or delete on audit_event
    for each row execute function audit_event_guard();

create function audit_no_truncate() returns trigger
    language plpgsql as $$
begin
    raise exception '% cannot be truncated', tg_table_name using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_event_no_truncate before truncate on audit_event
    for each statement execute function audit_no_truncate();

create trigger audit_checkpoint_append_only before update or delete on audit_checkpoint
    for each row execute function reject_change();

do $$
declare
    t text;
begin
    foreach t in array array['audit_log', 'audit_event', 'audit_node', 'audit_checkpoint',
                             'audit_evidence', 'audit_subject_token']
    loop
        execute format('alter table %I enable row level security', t);
    end loop;
end
$$;
create policy tenant_isolation on audit_log
    using (tenant_id = app_tenant_id()) with check (tenant_id = app_tenant_id());
create policy tenant_isolation on audit_event
    using (tenant_id = app_tenant_id()) with check (tenant_id = app_tenant_id());
create policy tenant_isolation on audit_evidence
    using (tenant_id = app_tenant_id()) with check (tenant_id = app_tenant_id());
create policy tenant_isolation on audit_subject_token
    using (tenant_id = app_tenant_id()) with check (tenant_id = app_tenant_id());
create policy tenant_isolation on audit_node
    using (log_id in (select log_id from audit_log where tenant_id = app_tenant_id()));
create policy tenant_isolation on audit_checkpoint
    using (log_id in (select log_id from audit_log where tenant_id = app_tenant_id()));

-- The application role appends and reads; only the owner (integrator) assigns indexes.
grant select, insert on audit_log to consent_app;
grant select on audit_node, audit_checkpoint to consent_app;
grant select, insert on audit_event, audit_evidence to consent_app;
grant select, insert, delete on audit_subject_token to consent_app;
grant delete on audit_evidence to consent_app;

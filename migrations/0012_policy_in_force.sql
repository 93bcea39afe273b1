-- Which policy revision is in force, as a sequence of changes. `policy_revision` records each
-- revision the first time it is served, so going back to an earlier revision (a rollback)
-- left no trace in the audit log; now every change of the revision served is a row here and
-- an `admin.changed` leaf in every tenant's log, and a reload to the revision already in force
-- (many workers reloading together) is none.
create table policy_in_force (
    seq bigint generated always as identity primary key,
    revision text not null references policy_revision (revision),
    since timestamptz not null default clock_timestamp()
);
comment on table policy_in_force is 'Every change of the policy revision served, in order.';
create trigger policy_in_force_append_only before update or delete on policy_in_force
    for each row execute function reject_change();

insert into policy_in_force (revision, since)
select revision, first_served_at from policy_revision order by first_served_at, revision;

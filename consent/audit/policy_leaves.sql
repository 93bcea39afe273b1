-- name: lock_policy_changes
select pg_advisory_xact_lock(hashtextextended('consent/policy-in-force', 0));

-- name: record_revision
insert into policy_revision (revision, engine) values ($1, $2)
on conflict (revision) do nothing;

-- name: change_in_force
-- Under lock_policy_changes: a new row (and its time) unless $1 is already in force.
insert into policy_in_force (revision)
select $1
where $1 is distinct from (select revision from policy_in_force order by seq desc limit 1)
returning since;

-- name: tenants
select id from tenant order by id;

-- name: in_force
select revision, since from policy_in_force order by seq desc limit 1;

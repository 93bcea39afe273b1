-- name: record_revision
insert into policy_revision (revision, engine) values ($1, $2)
on conflict (revision) do nothing
returning first_served_at;

-- name: tenants
select id from tenant order by id;

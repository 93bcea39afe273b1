-- name: record_revision
insert into policy_revision (revision, engine) values ($1, $2)
on conflict (revision) do nothing
returning first_served_at;

-- name: tenants
select id from tenant order by id;

-- name: latest_revision
select revision, first_served_at from policy_revision
order by first_served_at desc, revision desc
limit 1;

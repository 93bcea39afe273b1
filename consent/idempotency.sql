-- name: forget_expired
-- Records older than $1 days, at most $2 of them (oldest first; rows another pruner holds are
-- skipped); how many were deleted. Runs as the schema owner: the application role may not
-- delete them (idempotency_record_created, migrations/0023_idempotency_retention.sql).
with expired as (
    select tenant_id, key from idempotency_record
    where created_at < now() - make_interval(days => $1)
    order by created_at
    limit $2
    for update skip locked
), gone as (
    delete from idempotency_record as r
    using expired as e
    where r.tenant_id = e.tenant_id and r.key = e.key
    returning 1
)
select count(*) from gone;

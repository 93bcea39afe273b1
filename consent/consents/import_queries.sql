-- Queries of `consent import` (consent/consents/importer.py); each runs in the tenant's
-- transaction under row-level security.

-- name: tenant_exists
select exists (select 1 from tenant where id = app_tenant_id());

-- name: known_purposes
-- Checked before the database write so a file full of unknown purposes is rejected cheaply;
-- `ConsentService.record_in` checks them again.
select key from purpose where tenant_id = app_tenant_id();

-- name: known_identifier_types
-- The tenant's own identifier types (with the built-in ones, what a row may name), checked
-- before the database write so that a rejection lists them instead of echoing the value found
-- (it may be an identifier in the wrong column).
select key from identifier_type where tenant_id = app_tenant_id();

-- name: prior_import
-- When the file was last committed: remembered by its keyed hash ($1), or by its plain SHA-256
-- ($2) before migration 0024; each row is compared by the kind of hash it holds only.
select imported_at from import_run
where (file_sha256 = $1 and file_hash_kind = 'hmac')
   or (file_sha256 = $2 and file_hash_kind = 'sha256')
order by imported_at desc
limit 1;

-- name: record_import
-- Before the commit; a concurrent import of the same file waits here for the first one and
-- then inserts nothing (unless `--again`, $3, which makes each run count as the latest). $1 is
-- the file's keyed hash (a row of the plain kind is left as it is).
insert into import_run (tenant_id, file_sha256, file_hash_kind, rows_imported)
values (app_tenant_id(), $1, 'hmac', $2)
on conflict (tenant_id, file_sha256) do update
    set imported_at = now(), rows_imported = excluded.rows_imported
    where $3
returning imported_at;

-- name: analyze_import_tables
-- The import's own rows into the planner's statistics (migrations/0016), as its row count
-- doubles.
select analyze_import_tables();

-- name: recorded_already
-- Which rows of a batch (in order, `i` from 1) are facts their subject already has: an event
-- of the subject or of a subject linked into it (as `group_members` in subjects/queries.sql)
-- with the same occurred_at, the same choices in any order (each side contains the other: the
-- purposes of one event are distinct) and the same proof fields. A row names its subject by id
-- ($1) or by identifier type and keyed HMAC ($2, $3); `survivor` is its surviving subject (as
-- find_identifier_unlocked / resolve_subject_unlocked find it), null when there is none yet.
-- $5: each row's choices as JSON text. The import's own earlier rows count: a transaction sees
-- its own writes. Every lookup is by index: the survivors are found once (materialized), then
-- each one's events through consent_event_subject.
with g as materialized (
    select r.*,
           coalesce(
               (select coalesce(s.merged_into, s.id)
                from subject_identifier as si
                join subject as s on s.id = si.subject_id
                where r.subject_id is null and si.tenant_id = app_tenant_id()
                  and si.id_type = r.id_type and si.lookup_hmac = r.digest),
               (select coalesce(s.merged_into, s.id) from subject as s where s.id = r.subject_id)
           ) as survivor
    from unnest($1::uuid[], $2::text[], $3::bytea[], $4::timestamptz[], $5::text[],
                $6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                $12::uuid[])
             with ordinality
             as r (subject_id, id_type, digest, occurred_at, choices, notice_version_id,
                   language, surface, channel, method, agent_id, property_id, i)
)
select g.i, g.survivor,
       g.survivor is not null and exists (
           select 1
           from consent_event as e
           where e.tenant_id = app_tenant_id()
             and e.subject_id = any (array(
                 select m.id from subject as m
                 where m.id = g.survivor or m.merged_into = g.survivor))
             and e.occurred_at = g.occurred_at
             and e.choices @> g.choices::jsonb
             and e.choices <@ g.choices::jsonb
             and e.notice_version_id is not distinct from g.notice_version_id
             and e.language is not distinct from g.language
             and e.surface = g.surface
             and e.channel = g.channel
             and e.method = g.method
             and e.agent_id is not distinct from g.agent_id
             and e.property_id is not distinct from g.property_id
       ) as recorded
from g
order by g.i;

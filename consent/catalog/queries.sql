-- name: insert_purpose
insert into purpose (tenant_id, key, name, description, legal_basis, max_age_days,
                     strictly_necessary, sensitive)
values ($1, $2, $3, $4, $5, $6, $7, $8)
returning key, name, description, legal_basis, max_age_days, strictly_necessary, sensitive,
          created_at;

-- name: list_purposes
select key, name, description, legal_basis, max_age_days, strictly_necessary, sensitive,
       created_at
from purpose
where $1::text is null or key > $1
order by key
limit $2;

-- name: get_purpose
select key, name, description, legal_basis, max_age_days, strictly_necessary, sensitive,
       created_at
from purpose
where key = $1;

-- name: existing_purpose_keys
select key from purpose where key = any($1::text[]);

-- name: insert_notice
insert into notice (tenant_id, key, purpose_keys)
values ($1, $2, $3)
returning id, key, purpose_keys as purposes, created_at;

-- name: list_notices
select id, key, purpose_keys as purposes, created_at from notice
where $1::text is null or key > $1
order by key
limit $2;

-- name: get_notice
select id, key, purpose_keys as purposes, created_at from notice where key = $1;

-- name: lock_notice
select id from notice where key = $1 for update;

-- name: notice_versions
select v.id, n.key as notice_key, v.version, v.texts, encode(v.content_hash, 'hex') as content_hash,
       v.change_kind, v.material_version, v.shown_since, v.published_at, v.created_at
from notice_version v join notice n on n.id = v.notice_id
where n.key = $1 and ($2::integer is null or v.version < $2)
order by v.version desc
limit $3;

-- name: latest_version
select version, published_at, material_version
from notice_version
where notice_id = $1
order by version desc
limit 1;

-- name: latest_published_material
select coalesce(max(material_version), 0) from notice_version
where notice_id = $1 and published_at is not null;

-- name: insert_notice_version
insert into notice_version (tenant_id, notice_id, version, texts, content_hash, change_kind,
                            shown_since)
values ($1, $2, $3, $4, $5, $6, $7)
returning id;

-- name: publish_version
update notice_version
set published_at = now(), material_version = $3
where notice_id = $1 and version = $2 and published_at is null
returning id;

-- name: replace_draft
-- A draft's texts, change kind and first showing replaced (the trigger of migrations/0002 refuses a published
-- version; `published_at is null` makes a publication that won the lock a no-op here).
update notice_version
set texts = $3, content_hash = $4, change_kind = $5, shown_since = $6
where notice_id = $1 and version = $2 and published_at is null
returning id;

-- name: delete_draft
-- A draft thrown away unpublished (no consent can name a draft: consents/service.py).
delete from notice_version
where notice_id = $1 and version = $2 and published_at is null
returning id;

-- name: get_version
select v.id, n.key as notice_key, v.version, v.texts, encode(v.content_hash, 'hex') as content_hash,
       v.change_kind, v.material_version, v.shown_since, v.published_at, v.created_at
from notice_version v join notice n on n.id = v.notice_id
where n.key = $1 and v.version = $2;

-- name: insert_vendor
insert into vendor (tenant_id, name, purpose_keys, url, tcf_vendor_id)
values ($1, $2, $3, $4, $5)
returning id, name, purpose_keys as purposes, url, tcf_vendor_id, created_at;

-- name: list_vendors
select id, name, purpose_keys as purposes, url, tcf_vendor_id, created_at
from vendor
where $1::text is null or name > $1
order by name
limit $2;

-- name: insert_identifier_type
insert into identifier_type (tenant_id, key, description)
values ($1, $2, $3)
returning key, description, false as builtin;

-- name: list_identifier_types
select key, description, false as builtin from identifier_type
where $1::text is null or key > $1
order by key
limit $2;

-- name: identifier_type_exists
select exists (select 1 from identifier_type where key = $1);

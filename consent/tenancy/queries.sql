-- name: insert_tenant
insert into tenant (name) values ($1)
returning id, name, created_at, settings;

-- name: get_tenant
select id, name, created_at, settings from tenant where id = $1;

-- name: update_settings
update tenant set settings = $2::jsonb where id = $1
returning settings;

-- name: insert_property
insert into property (tenant_id, name, kind, allowed_origins)
values ($1, $2, $3, $4)
returning id, name, kind, allowed_origins, created_at;

-- name: list_properties
select id, name, kind, allowed_origins, created_at
from property
where ($1::timestamptz is null or (created_at, id) < ($1, $2::uuid))
order by created_at desc, id desc
limit $3;

-- name: get_property
select id, name, kind, allowed_origins, created_at from property where id = $1;

-- name: insert_api_key
insert into api_key (tenant_id, property_id, key_id, secret_sha256, name, scopes, allowed_origins)
values ($1, $2, $3, $4, $5, $6, $7)
returning id, key_id, property_id, name, scopes, allowed_origins, created_at, revoked_at;

-- name: list_api_keys
select id, key_id, property_id, name, scopes, allowed_origins, created_at, revoked_at
from api_key
where ($1::timestamptz is null or (created_at, id) < ($1, $2::uuid))
order by created_at desc, id desc
limit $3;

-- name: revoke_api_key
update api_key set revoked_at = coalesce(revoked_at, now())
where id = $1
returning id, key_id, property_id, name, scopes, allowed_origins, created_at, revoked_at;

-- name: notify_revoked
-- Every process forgets the key from its key cache (consent.tenancy.revocations), on commit.
select pg_notify('consent_api_key_revoked', $1);

-- name: find_api_key
select tenant_id, property_id, secret_sha256, scopes, allowed_origins, revoked_at
from api_key
where key_id = $1;

-- name: list_tenants
-- Operators (CLI): every tenant, oldest first, with how many unrevoked keys it has.
select t.id, t.name, t.created_at,
       (select count(*) from api_key as k where k.tenant_id = t.id and k.revoked_at is null)
           as active_keys
from tenant as t
order by t.created_at, t.id;

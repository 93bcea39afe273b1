-- Foundation: tenants, properties, API keys, per-subject data keys, idempotency records,
-- and the row-level security that keeps every tenant's rows invisible to every other tenant.

-- The role every tenant-scoped transaction switches to (`set local role consent_app`).
-- Roles are cluster-wide, so creating it tolerates a concurrent creator in another database.
do $$
begin
    -- A role that exists is left alone: creating one needs CREATEROLE, which the owner of a
    -- production database often lacks (its DBA then creates the role and grants it).
    if not exists (select from pg_roles where rolname = 'consent_app') then
        create role consent_app nologin;
    end if;
exception
    when duplicate_object then null;
    when unique_violation then null;
end
$$;

do $$
begin
    if not (select rolsuper from pg_roles where rolname = current_user) then
        execute format('grant consent_app to %I', current_user);
    end if;
exception
    -- Already a member (granted by the DBA), without the right to grant it: nothing to do.
    when insufficient_privilege then
        if not pg_has_role(current_user, 'consent_app', 'member') then
            raise;
        end if;
end
$$;

-- The tenant's id as set by the application for the current transaction (null when unset).
create function app_tenant_id() returns uuid
    language sql stable
    as $$ select nullif(current_setting('app.tenant_id', true), '')::uuid $$;

create table tenant (
    id uuid primary key default gen_random_uuid(),
    name text not null check (length(name) between 1 and 200),
    -- Tenant options, e.g. {"store_network_evidence": true} to keep truncated IP / user agent.
    settings jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);
comment on table tenant is 'A business using the service; every other row belongs to one tenant.';

create table property (
    id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null references tenant (id),
    name text not null check (length(name) between 1 and 200),
    kind text not null check (kind in ('website', 'app', 'channel')),
    -- Origins (scheme://host[:port]) a banner on this property may call from.
    allowed_origins text[] not null default '{}',
    created_at timestamptz not null default now(),
    unique (tenant_id, name)
);
comment on table property is 'A website, app or channel (store, call centre, e-mail) of a tenant.';
create index property_tenant_created on property (tenant_id, created_at desc, id desc);

create table api_key (
    id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null references tenant (id),
    property_id uuid references property (id),
    -- Public half of the key (shown in the key string); the secret half is stored only hashed.
    key_id text not null unique,
    secret_sha256 bytea not null check (octet_length(secret_sha256) = 32),
    name text not null check (length(name) between 1 and 200),
    scopes text[] not null check (
        cardinality(scopes) > 0 and scopes <@ array['admin', 'write', 'decide', 'read']
    ),
    -- Non-empty for banner keys: requests must come from one of these browser origins.
    allowed_origins text[] not null default '{}',
    created_at timestamptz not null default now(),
    revoked_at timestamptz
);
comment on column api_key.secret_sha256 is 'SHA-256 of the 256-bit random secret; never the secret.';
create index api_key_tenant_created on api_key (tenant_id, created_at desc, id desc);

create table subject_key (
    tenant_id uuid not null references tenant (id),
    subject_id uuid not null,
    -- Id of the key-encryption key that wrapped dek_wrapped (see `consent keys rotate`).
    kek_id text not null,
    -- AES-256-GCM data key of this subject, wrapped (nonce || ciphertext || tag) by the KEK,
    -- bound to tenant and subject by the associated data. Deleting the row erases the subject.
    dek_wrapped bytea not null,
    created_at timestamptz not null default now(),
    rotated_at timestamptz,
    primary key (tenant_id, subject_id)
);
comment on table subject_key is 'Per-subject data keys; destroying one crypto-shreds that subject.';
create index subject_key_kek on subject_key (kek_id);

create table idempotency_record (
    tenant_id uuid not null references tenant (id),
    key text not null check (length(key) between 1 and 200),
    -- What the request asked for; a retry with another body under the same key is refused.
    request_sha256 bytea not null,
    status_code integer not null,
    response_body bytea not null,
    created_at timestamptz not null default now(),
    primary key (tenant_id, key)
);
comment on table idempotency_record is 'Responses of writes sent with an Idempotency-Key header.';

-- Row-level security: the consent_app role sees only the rows of app_tenant_id().
alter table tenant enable row level security;
create policy tenant_isolation on tenant
    using (id = app_tenant_id()) with check (id = app_tenant_id());

alter table property enable row level security;
create policy tenant_isolation on property
    using (tenant_id = app_tenant_id()) with check (tenant_id = app_tenant_id());

alter table api_key enable row level security;
create policy tenant_isolation on api_key
    using (tenant_id = app_tenant_id()) with check (tenant_id = app_tenant_id());

alter table subject_key enable row level security;
create policy tenant_isolation on subject_key
    using (tenant_id = app_tenant_id()) with check (tenant_id = app_tenant_id());

alter table idempotency_record enable row level security;
create policy tenant_isolation on idempotency_record
    using (tenant_id = app_tenant_id()) with check (tenant_id = app_tenant_id());

grant usage on schema public to consent_app;
grant select on tenant to consent_app;
grant select, insert, update on property to consent_app;
grant select, insert, update on api_key to consent_app;
grant select, insert, update, delete on subject_key to consent_app;
grant select, insert on idempotency_record to consent_app;
grant execute on function app_tenant_id() to consent_app;

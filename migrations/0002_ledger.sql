-- The consent ledger: purposes, versioned notices, vendors, subjects and identifiers,
-- append-only consent and preference events, and their current-state projections.

create table purpose (
    tenant_id uuid not null references tenant (id),
    key text not null check (key ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    name text not null check (length(name) between 1 and 200),
    description text not null default '',
    legal_basis text not null
        check (legal_basis in ('consent', 'legitimate_interest', 'contract', 'legal_obligation')),
    -- A choice older than this is expired (e.g. 395 days = 13 months); null = no limit.
    max_age_days integer check (max_age_days between 1 and 3650),
    strictly_necessary boolean not null default false,
    -- Special-category / sensitive data (GDPR Art 9, CPRA "sensitive personal information").
    sensitive boolean not null default false,
    created_at timestamptz not null default now(),
    primary key (tenant_id, key)
);
comment on table purpose is 'Why data is processed; consent is given or refused per purpose.';

create table notice (
    id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null references tenant (id),
    key text not null check (key ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    -- The purposes this notice asks about.
    purpose_keys text[] not null check (cardinality(purpose_keys) between 1 and 100),
    created_at timestamptz not null default now(),
    unique (tenant_id, key)
);

create table notice_version (
    id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null references tenant (id),
    notice_id uuid not null references notice (id),
    version integer not null check (version >= 1),
    -- {"en": {"title": ..., "body": ...}, "de": {...}}
    texts jsonb not null,
    -- SHA-256 of the canonical JSON of `texts`: what the subject saw, provably.
    content_hash bytea not null check (octet_length(content_hash) = 32),
    -- material: earlier consents to this notice become stale; editorial: they stay valid.
    change_kind text not null check (change_kind in ('material', 'editorial')),
    -- Number of material versions up to this one (a consent under a lower number is stale).
    material_version integer,
    published_at timestamptz,
    created_at timestamptz not null default now(),
    unique (notice_id, version)
);
create index notice_version_notice on notice_version (notice_id, version desc);

-- Published notice versions are immutable: only a draft may change (and be published once).
create function notice_version_immutable() returns trigger
    language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        if old.published_at is not null then
            raise exception 'a published notice version cannot be deleted'
                using errcode = 'check_violation';
        end if;
        return old;
    end if;
    if old.published_at is not null then
        raise exception 'a published notice version is immutable'
            using errcode = 'check_violation';
    end if;
    return new;
end
$$;
create trigger notice_version_immutable before update or delete on notice_version
    for each row execute function notice_version_immutable();

create table vendor (
    id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null references tenant (id),
    name text not null check (length(name) between 1 and 200),
    purpose_keys text[] not null default '{}',
    url text,
    -- IAB TCF Global Vendor List id, when the vendor is registered there.
    tcf_vendor_id integer check (tcf_vendor_id > 0),
    created_at timestamptz not null default now(),
    unique (tenant_id, name)
);

create table identifier_type (
    tenant_id uuid not null references tenant (id),
    key text not null check (key ~ '^[a-z][a-z0-9_]{0,31}$'),
    description text not null default '',
    created_at timestamptz not null default now(),
    primary key (tenant_id, key)
);
comment on table identifier_type is 'Custom identifier types a tenant defines (beyond the built-in ones).';

create table subject (
    id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null references tenant (id),
    -- Set when this subject was linked into another one (the survivor); never cleared.
    merged_into uuid references subject (id),
    created_at timestamptz not null default now()
);
create index subject_merged_into on subject (merged_into) where merged_into is not null;

create table subject_identifier (
    tenant_id uuid not null references tenant (id),
    id_type text not null,
    -- HMAC-SHA256 of the normalised identifier under the tenant's lookup key.
    lookup_hmac bytea not null check (octet_length(lookup_hmac) = 32),
    subject_id uuid not null references subject (id),
    -- The normalised identifier, AES-256-GCM under the subject's data key (never in clear).
    value_enc bytea not null,
    created_at timestamptz not null default now(),
    primary key (tenant_id, id_type, lookup_hmac)
);
create index subject_identifier_subject on subject_identifier (subject_id);

create table consent_event (
    id uuid primary key default gen_random_uuid(),
    -- Arrival order, for stable tie-breaks and pagination (gaps are fine).
    seq bigint generated always as identity,
    tenant_id uuid not null references tenant (id),
    subject_id uuid not null references subject (id),
    -- When the choice was made (client-supplied for imports and offline channels).
    occurred_at timestamptz not null,
    recorded_at timestamptz not null default now(),
    -- [{"purpose": "analytics", "choice": "granted"}, ...]
    choices jsonb not null,
    notice_version_id uuid references notice_version (id),
    notice_hash bytea,
    language text,
    surface text not null,
    channel text not null,
    method text not null,
    agent_id text,
    property_id uuid references property (id),
    -- Truncated IP / user agent etc., encrypted under the subject's data key (tenant opt-in).
    evidence_enc bytea
);
create index consent_event_subject on consent_event (tenant_id, subject_id, seq desc);

create table consent_state (
    tenant_id uuid not null references tenant (id),
    subject_id uuid not null references subject (id),
    purpose_key text not null,
    choice text not null check (choice in ('granted', 'denied', 'withdrawn')),
    event_id uuid not null references consent_event (id),
    occurred_at timestamptz not null,
    event_seq bigint not null,
    notice_version_id uuid references notice_version (id),
    -- Material version of the notice when the choice was made (stale when lower than now).
    material_version integer,
    primary key (tenant_id, subject_id, purpose_key)
);
comment on table consent_state is 'Current choice per (subject, purpose): a projection of consent_event.';

create table preference_event (
    id uuid primary key default gen_random_uuid(),
    seq bigint generated always as identity,
    tenant_id uuid not null references tenant (id),
    subject_id uuid not null references subject (id),
    occurred_at timestamptz not null,
    recorded_at timestamptz not null default now(),
    -- [{"kind": "channel", "key": "email", "value": "opt_in"}, ...]
    items jsonb not null,
    surface text not null,
    channel text not null,
    method text not null,
    agent_id text,
    property_id uuid references property (id)
);
create index preference_event_subject on preference_event (tenant_id, subject_id, seq desc);

create table preference_state (
    tenant_id uuid not null references tenant (id),
    subject_id uuid not null references subject (id),
    kind text not null check (kind in ('channel', 'topic', 'frequency')),
    key text not null,
    value text not null,
    event_id uuid not null references preference_event (id),
    occurred_at timestamptz not null,
    event_seq bigint not null,
    primary key (tenant_id, subject_id, kind, key)
);

-- Append-only ledgers: events can be neither changed nor deleted by the application.
create function reject_change() returns trigger
    language plpgsql as $$
begin
    raise exception '% is append-only', tg_table_name using errcode = 'insufficient_privilege';
end
$$;
create trigger consent_event_append_only before update or delete on consent_event
    for each row execute function reject_change();
create trigger preference_event_append_only before update or delete on preference_event
    for each row execute function reject_change();

do $$
declare
    t text;
begin
    foreach t in array array['purpose', 'notice', 'notice_version', 'vendor', 'identifier_type',
                             'subject', 'subject_identifier', 'consent_event', 'consent_state',
                             'preference_event', 'preference_state']
    loop
        execute format('alter table %I enable row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = app_tenant_id()) '
            'with check (tenant_id = app_tenant_id())', t);
    end loop;
end
$$;

grant select, insert, update on purpose, notice, vendor, identifier_type, subject to consent_app;
grant select, insert, update, delete on notice_version to consent_app;
grant select, insert, update, delete on subject_identifier to consent_app;
grant select, insert on consent_event, preference_event to consent_app;
grant select, insert, update, delete on consent_state, preference_state to consent_app;

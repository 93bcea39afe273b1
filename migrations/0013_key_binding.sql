-- The database remembers which key ring its data belongs to: a fingerprint of the lookup key
-- (identifiers are found by HMAC under it) and every KEK that has wrapped its data keys. A
-- service or command started with another key directory (a typo in CONSENT_KEYS_DIR, a new
-- machine without the keys) is refused instead of hashing identifiers anew and wrapping data
-- keys under a KEK the other processes cannot open. Operator data: no tenant, no app grant.
create table key_binding (
    id boolean primary key default true check (id),
    lookup_fingerprint text not null,
    kek_ids text[] not null,
    bound_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table key_binding is 'The key ring this database belongs to (consent.crypto.binding).';

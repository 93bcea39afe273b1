-- Idempotency records keep a keyed hash of their request, not a plain SHA-256.
--
-- A consent, preference or link request holds the person's identifiers and its body is easy to
-- rebuild (the API is public): a plain SHA-256 of it let anyone holding a dump confirm a guessed
-- e-mail address, from the write until an erasure overwrote it (migration 0020). The service now
-- stores HMAC-SHA256 of the request under a per-tenant key derived from its lookup root
-- (`consent/idempotency/v1/<tenant>`, consent/crypto/keys.py), which a dump does not hold.
--
-- The records written before hold a plain SHA-256, and a retry of such a write must still get
-- its first answer: each record says which kind of hash it holds, and is compared by that kind
-- only. The column's default stays 'sha256' on purpose: a row inserted without naming its kind
-- comes from code that stored the plain hash (a worker not yet upgraded). The service names
-- 'hmac' on every insert. Erasure's zeros (forget_idempotent_requests) match neither kind.
alter table idempotency_record
    add column request_hash_kind text not null default 'sha256'
        check (request_hash_kind in ('sha256', 'hmac'));

comment on column idempotency_record.request_sha256 is
    'Hash of the request, of the kind request_hash_kind names: HMAC-SHA256 under the tenant''s '
    'idempotency key (hmac), or a plain SHA-256 (sha256: written before migration 0021); '
    'zeros once the subject its answer names is erased.';
comment on column idempotency_record.request_hash_kind is
    'Which hash request_sha256 holds: hmac (keyed, per tenant) or sha256 (legacy, unkeyed).';

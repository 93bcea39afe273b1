-- `consent import` remembers the files it committed by a keyed hash, not a plain SHA-256.
--
-- A small import file (one row: one person's e-mail address and a choice) is easy to rebuild,
-- so a plain SHA-256 of it let anyone holding a dump confirm a guessed address, and nothing
-- removed it at that person's erasure. The importer now stores HMAC-SHA256 of the file's bytes
-- under a per-tenant key derived from the lookup root (`consent/import-file/v1/<tenant>`,
-- consent/crypto/keys.py), which a dump does not hold.
--
-- The rows written before hold a plain SHA-256, and the file each names must still import
-- nothing again: each row says which kind of hash it holds, and is compared by that kind only.
-- The default stays 'sha256' on purpose: a row inserted without naming its kind comes from
-- code that stored the plain hash (an importer not yet upgraded). The importer names 'hmac'.
-- Both kinds are 32 bytes under the same primary key; a keyed hash equal to another file's
-- plain one is as likely as a SHA-256 collision.
alter table import_run
    add column file_hash_kind text not null default 'sha256'
        check (file_hash_kind in ('sha256', 'hmac'));

comment on table import_run is
    'Files committed by `consent import`, by a hash of their bytes (file_hash_kind).';
comment on column import_run.file_sha256 is
    'Hash of the file''s bytes, of the kind file_hash_kind names: HMAC-SHA256 under the '
    'tenant''s import file key (hmac), or a plain SHA-256 (sha256: written before migration '
    '0024).';
comment on column import_run.file_hash_kind is
    'Which hash file_sha256 holds: hmac (keyed, per tenant) or sha256 (legacy, unkeyed).';

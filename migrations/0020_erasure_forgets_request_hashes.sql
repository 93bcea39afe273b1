-- Erasure forgets what idempotency records remember of the person.
--
-- A write sent with an Idempotency-Key keeps the SHA-256 of its request next to its answer, to
-- refuse the key's reuse for another request. A consent, preference or link request holds the
-- person's identifiers (an e-mail address, a phone number), and its body is easy to rebuild
-- (the API is public): whoever reads a dump and guesses the e-mail address could confirm it by
-- that hash, after the erasure too. Erasure (consent/subjects/erasure.py) now overwrites the
-- hash with zeros in every record whose answer names an erased subject. The record stays, so a
-- retry of such a write under its key still writes nothing (it is refused as a key used for
-- another request) and brings nobody back.

-- The subject a stored answer names (its top-level "subject_id", as msgspec writes it), null
-- for answers naming none. Never raises (only a well-formed UUID is cast), and costs a few
-- microseconds per idempotent write: a search for the key, then one short anchored match.
create function idempotent_answer_subject(p_body bytea) returns uuid
    language sql immutable strict parallel safe
    return case
        when encode(
            substring(p_body from nullif(position('"subject_id":"'::bytea in p_body), 0) + 14
                for 36),
            'escape'
        ) ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        then encode(
            substring(p_body from position('"subject_id":"'::bytea in p_body) + 14 for 36),
            'escape'
        )::uuid
    end;

create index idempotency_record_subject
    on idempotency_record (tenant_id, idempotent_answer_subject(response_body));

-- The application role may not change idempotency records: the owner does it, for the
-- caller's own tenant only (as mark_subjects_erased, migrations/0009_erasure.sql).
create function forget_idempotent_requests(p_ids uuid[]) returns integer
    language plpgsql security definer set search_path = pg_catalog, public as $$
declare
    forgotten integer;
begin
    update idempotency_record
    set request_sha256 = decode(repeat('00', 32), 'hex')
    where tenant_id = app_tenant_id() and idempotent_answer_subject(response_body) = any(p_ids);
    get diagnostics forgotten = row_count;
    return forgotten;
end
$$;
revoke all on function forget_idempotent_requests(uuid[]) from public;
grant execute on function forget_idempotent_requests(uuid[]) to consent_app;

-- Erasure forgets the keyed HMACs that decisions about unknown identifiers logged; verify
-- finds each tenant's audience rows by an index (at the end).
--
-- A decision asked about an identifier the ledger does not know (yet) names no subject: it is
-- logged with the identifier's type and keyed HMAC (decision_log.lookup_hmac). Once that
-- identifier belongs to a subject and the subject is erased, its mapping (subject_identifier)
-- is gone and these HMACs were the last copies: whoever holds the lookup key and a dump could
-- confirm by them that the service was asked about a guessed e-mail address. Erasure
-- (consent/subjects/erasure.py) now clears them, before it deletes the mappings it finds them
-- by. The decision rows stay (each is a logged use: who asked what, and the answer), with no
-- reference to the person, as pseudonymous as the rest of the log. No audit leaf covers
-- lookup_hmac (leaves are written for decisions about known subjects only), so every proof
-- still verifies.

-- The decisions logged with one identifier's HMAC (only decisions about unknown identifiers
-- have one), probed once per identifier at erasure instead of scanning the tenant's decisions.
create index decision_log_lookup on decision_log (tenant_id, id_type, lookup_hmac)
    where lookup_hmac is not null;

-- decision_log stays append-only but for that one change: an HMAC cleared, nothing else.
create function decision_log_reject_change() returns trigger
    language plpgsql as $$
begin
    if tg_op = 'UPDATE' and old.lookup_hmac is not null and new.lookup_hmac is null
       and to_jsonb(new) = to_jsonb(old) || jsonb_build_object('lookup_hmac', null) then
        return new;
    end if;
    raise exception '% is append-only', tg_table_name using errcode = 'insufficient_privilege';
end
$$;
drop trigger decision_log_append_only on decision_log;
create trigger decision_log_append_only before update or delete on decision_log
    for each row execute function decision_log_reject_change();

-- The application role may not change decision_log: the owner does it, for the caller's own
-- tenant only (as mark_subjects_erased, migrations/0009_erasure.sql). Call it before the
-- subjects' identifier mappings are deleted: they are how the HMACs are found.
create function forget_decision_lookups(p_ids uuid[]) returns integer
    language plpgsql security definer set search_path = pg_catalog, public as $$
declare
    forgotten integer;
begin
    update decision_log as d
    set lookup_hmac = null
    from subject_identifier as i
    where i.tenant_id = app_tenant_id() and i.subject_id = any(p_ids)
      and d.tenant_id = i.tenant_id and d.id_type = i.id_type and d.lookup_hmac = i.lookup_hmac;
    get diagnostics forgotten = row_count;
    return forgotten;
end
$$;
revoke all on function forget_decision_lookups(uuid[]) from public;
grant execute on function forget_decision_lookups(uuid[]) to consent_app;

-- `consent audit verify` checks each tenant's audience_member rows against their audience.used
-- leaves (consent/audit/verify_db.py): one range of this index per tenant, in leaf-link order,
-- instead of a scan of every tenant's rows per log.
create index audience_member_leaf on audience_member (tenant_id, event_uuid)
    where event_uuid is not null;

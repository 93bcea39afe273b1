-- Erasure (GDPR Art 17) by crypto-shredding: `DELETE /v1/subjects/{id}` destroys the data keys
-- of the subject and of every subject linked into it, their identifier mappings, audit tokens,
-- evidence ciphertexts and current-state rows, and appends a `subject.erased` leaf per subject.
-- What stays is pseudonymous proof (consent and preference events, decisions, audit leaves)
-- that nothing links to a person any more, so every audit proof still verifies.
--
-- The subject row stays (events reference it) with erased_at set; row-level security hides
-- erased subjects from the application role, so every read, write, link and decision treats
-- them exactly like subjects that never existed.

alter table subject add column erased_at timestamptz;
comment on column subject.erased_at is 'Set by erasure; the application role no longer sees the row.';

alter policy tenant_isolation on subject
    using (tenant_id = app_tenant_id() and erased_at is null)
    with check (tenant_id = app_tenant_id() and erased_at is null);

-- Marking rows erased makes them invisible to the caller, which row-level security forbids for
-- an UPDATE by that caller: the owner does it, for the caller's own tenant only.
create function mark_subjects_erased(p_ids uuid[]) returns integer
    language plpgsql security definer set search_path = pg_catalog, public as $$
declare
    marked integer;
begin
    update subject set erased_at = clock_timestamp()
    where tenant_id = app_tenant_id() and id = any(p_ids) and erased_at is null;
    get diagnostics marked = row_count;
    return marked;
end
$$;
revoke all on function mark_subjects_erased(uuid[]) from public;
grant execute on function mark_subjects_erased(uuid[]) to consent_app;

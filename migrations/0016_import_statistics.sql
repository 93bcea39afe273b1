-- A bulk import (`consent import`) is one transaction, and autovacuum cannot see the rows it
-- has not committed. Importing many rows into tables that were analysed while small left the
-- planner believing they were small: the plans it cached for the import's statements and for
-- their foreign-key checks scanned what the import had already written, so every row cost more
-- than the one before (a 20,000-row import into a new service slowed down ~9x from its first
-- tenth to its last; bench/ledger_import.py).
--
-- `analyze_import_tables()` refreshes the statistics of the tables an import writes from inside
-- its transaction: ANALYZE counts the transaction's own new rows, and new statistics make
-- PostgreSQL plan the cached statements again. The importer calls it as its row count doubles.
-- SKIP_LOCKED: it never waits for another ANALYZE (autovacuum's, another import's). The lock it
-- takes lasts until the import ends and conflicts only with VACUUM, ANALYZE and schema changes
-- of those tables, never with reads or writes. Only the owner may analyse them: a definer
-- function, for the application role.
create function analyze_import_tables() returns void
    language plpgsql security definer set search_path = pg_catalog, public as $$
begin
    analyze (skip_locked) subject, subject_identifier, subject_key, audit_subject_token,
        consent_event, consent_state, audit_event, audit_evidence, audit_pending;
end
$$;
revoke all on function analyze_import_tables() from public;
grant execute on function analyze_import_tables() to consent_app;

-- Tenant isolation in the schema itself: a row can reference another row of its own tenant
-- only. Row-level security keeps each tenant's requests to its own rows, and the service never
-- mixes tenants; these keys make a cross-tenant reference impossible whatever writes it (a
-- bug, an import, an operator's SQL as the owner, who bypasses row-level security).
--
-- Each reference becomes a composite key (tenant_id, <ref>) to the target's (tenant_id, id).
-- A row that references its subject no longer also references the tenant: the subject
-- does, so the tenant still exists, and the hot ledger writes stop taking a share lock on
-- their tenant's one row per written row (~18 per first-sight consent write, all writers of a
-- tenant on the same row).
--
-- Targets get a unique (tenant_id, id): the id alone is already unique, so no existing row can
-- violate them; the new keys are checked against every existing row as they are added.

alter table subject add constraint subject_tenant_id_id_key unique (tenant_id, id);
alter table notice add constraint notice_tenant_id_id_key unique (tenant_id, id);
alter table notice_version add constraint notice_version_tenant_id_id_key unique (tenant_id, id);
alter table property add constraint property_tenant_id_id_key unique (tenant_id, id);
alter table consent_event add constraint consent_event_tenant_id_id_key unique (tenant_id, id);
alter table preference_event
    add constraint preference_event_tenant_id_id_key unique (tenant_id, id);

-- A subject is linked into a survivor of its own tenant only (null: not linked, not checked).
alter table subject
    drop constraint subject_merged_into_fkey,
    add constraint subject_merged_into_fkey foreign key (tenant_id, merged_into)
        references subject (tenant_id, id);

alter table subject_identifier
    drop constraint subject_identifier_tenant_id_fkey,
    drop constraint subject_identifier_subject_id_fkey,
    add constraint subject_identifier_subject_id_fkey foreign key (tenant_id, subject_id)
        references subject (tenant_id, id);

alter table consent_event
    drop constraint consent_event_tenant_id_fkey,
    drop constraint consent_event_subject_id_fkey,
    drop constraint consent_event_notice_version_id_fkey,
    drop constraint consent_event_property_id_fkey,
    add constraint consent_event_subject_id_fkey foreign key (tenant_id, subject_id)
        references subject (tenant_id, id),
    add constraint consent_event_notice_version_id_fkey foreign key (tenant_id, notice_version_id)
        references notice_version (tenant_id, id),
    add constraint consent_event_property_id_fkey foreign key (tenant_id, property_id)
        references property (tenant_id, id);

alter table consent_state
    drop constraint consent_state_tenant_id_fkey,
    drop constraint consent_state_subject_id_fkey,
    drop constraint consent_state_event_id_fkey,
    drop constraint consent_state_notice_version_id_fkey,
    add constraint consent_state_subject_id_fkey foreign key (tenant_id, subject_id)
        references subject (tenant_id, id),
    add constraint consent_state_event_id_fkey foreign key (tenant_id, event_id)
        references consent_event (tenant_id, id),
    add constraint consent_state_notice_version_id_fkey foreign key (tenant_id, notice_version_id)
        references notice_version (tenant_id, id);

alter table preference_event
    drop constraint preference_event_tenant_id_fkey,
    drop constraint preference_event_subject_id_fkey,
    drop constraint preference_event_property_id_fkey,
    add constraint preference_event_subject_id_fkey foreign key (tenant_id, subject_id)
        references subject (tenant_id, id),
    add constraint preference_event_property_id_fkey foreign key (tenant_id, property_id)
        references property (tenant_id, id);

alter table preference_state
    drop constraint preference_state_tenant_id_fkey,
    drop constraint preference_state_subject_id_fkey,
    drop constraint preference_state_event_id_fkey,
    add constraint preference_state_subject_id_fkey foreign key (tenant_id, subject_id)
        references subject (tenant_id, id),
    add constraint preference_state_event_id_fkey foreign key (tenant_id, event_id)
        references preference_event (tenant_id, id);

-- Catalogue and keys: cold tables, their tenant keys stay.
alter table notice_version
    drop constraint notice_version_notice_id_fkey,
    add constraint notice_version_notice_id_fkey foreign key (tenant_id, notice_id)
        references notice (tenant_id, id);

alter table api_key
    drop constraint api_key_property_id_fkey,
    add constraint api_key_property_id_fkey foreign key (tenant_id, property_id)
        references property (tenant_id, id);

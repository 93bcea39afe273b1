-- Preferences keep the same proof as consents: the truncated IP address and user agent of the
-- request, encrypted under the subject's data key, only while the tenant enables
-- `store_network_evidence` (as consent_event.evidence_enc). Null for events recorded without
-- it, and for every event recorded before this migration. Erasure destroys the data key, so
-- the column needs no erasure step of its own.
alter table preference_event add column evidence_enc bytea;

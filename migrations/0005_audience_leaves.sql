-- Audience filter runs become audit leaves: each audience_member row (one chunk of a run, one
-- shape) is one `audience.used` leaf whose event_uuid is stored here, so that a subject's
-- activity can list the runs that used its data (through the GIN index on subject_ids) with
-- the leaf that proves it. Rows written before this migration have no leaf (null).
alter table audience_member add column event_uuid uuid unique;
comment on column audience_member.event_uuid is 'The audience.used audit leaf of this row.';

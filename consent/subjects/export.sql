-- name: group_identifiers
-- The identifiers of a subject and of every subject linked into it ($1: the group, as
-- SubjectResolver.group gives it), each encrypted under its owning subject's data key, oldest
-- first. `created_at` is when the identifier was first seen: a link moves it to the survivor
-- (subject_id and value_enc change) and keeps that time.
select id_type, subject_id, value_enc, created_at
from subject_identifier
where subject_id = any($1::uuid[])
order by created_at, id_type, lookup_hmac;

-- name: subject_states
-- The consent state of a decision, a batch or an audience chunk in one round trip: see
-- decision_subject_states() in migrations/0003_decisions.sql (row-level security applies).
-- Call it outside a transaction: it switches its own (implicit) transaction to consent_app.
-- With each row, the tenant's erasure epoch (migrations/0028_erasure_fences_decision_lookups.sql)
-- as this statement's snapshot has it, taken before the function's own: never newer than the
-- state read, so a decision that read an identifier as unknown before an erasure committed
-- never holds the epoch after it.
select s.*,
       coalesce((select e.epoch from tenant_erasure_epoch as e where e.tenant_id = $1), 0)
           as erasure_epoch
from decision_subject_states($1, $2, $3, $4, $5, $6) as s;

-- name: audience_states
-- An audience chunk's consent state, grouped by (context, state key): see
-- audience_subject_states() in migrations/0008_audience_states.sql (row-level security applies).
-- Call it outside a transaction, like subject_states.
select * from audience_subject_states($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: purpose_keys
-- The tenant's purposes (row-level security: call it in the tenant's transaction).
select key from purpose;

-- name: known_identifier_types
select key from identifier_type where tenant_id = $1 and key = any($2::text[]);

-- name: insert_decisions
-- One multi-row insert per group commit, with the decisions' audit leaves: one statement, so
-- that it is atomic even outside a transaction. $1 is a JSON array of the decisions
-- (consent.decisions.logwriter.decision_rows: the stored columns and the erasure epoch their
-- read saw), $2 one of their leaves (consent.audit.decision_leaves.DecisionLeaf); bytes arrive
-- in base64. $3: the tenants of the decisions that carry an identifier HMAC. Such a decision
-- keeps it only if no erasure of its tenant committed since its read: decision_lookup_epochs
-- (migrations/0028_erasure_fences_decision_lookups.sql) takes those tenants' erasure locks in
-- shared mode until this commits and then reads their epochs afresh (the statement's own
-- snapshot, taken before it waited, would not see an erasure that committed meanwhile). It
-- runs only when a decision needs it (CASE evaluates the subquery for HMAC rows only).
with epochs as materialized (
    select f.tenant_id, f.epoch from decision_lookup_epochs($3::uuid[]) as f
), decisions as (
    insert into decision_log (id, tenant_id, decided_at, subject_id, id_type, lookup_hmac,
                              requester, api_key_id, request_id, kind, batch_id, action, allow,
                              reasons, purposes, policy_revision, input)
    select u.id, u.tenant_id, u.decided_at, u.subject_id, u.id_type,
           case
               when u.lookup_hmac is null then null
               when u.erasure_epoch
                    = (select f.epoch from epochs as f where f.tenant_id = u.tenant_id)
                   then decode(u.lookup_hmac, 'base64')
           end,
           u.requester, u.api_key_id, u.request_id, u.kind,
           u.batch_id, u.action, u.allow, u.reasons, u.purposes, u.policy_revision, u.input
    from json_to_recordset($1::json)
        as u (id uuid, tenant_id uuid, decided_at timestamptz, subject_id uuid, id_type text,
              lookup_hmac text, requester text, api_key_id text, request_id text, kind text,
              batch_id uuid, action text, allow boolean, reasons text[], purposes jsonb,
              policy_revision text, input jsonb, erasure_epoch bigint)
)
insert into audit_event (event_uuid, log_id, tenant_id, leaf_bytes, leaf_hash, kind, subject_id)
select l.event_uuid, l.log_id, l.tenant_id, decode(l.leaf_bytes, 'base64'),
       decode(l.leaf_hash, 'base64'), 'decision.made', l.subject_id
from json_to_recordset($2::json)
    as l (log_id bigint, tenant_id uuid, event_uuid uuid, leaf_bytes text, leaf_hash text,
          subject_id uuid);

-- name: insert_audience_run
-- Every chunk's batch carries the run (and its shapes) until one has committed: chunks in flight
-- together may commit in any order, and each must be complete on its own.
insert into audience_run (id, tenant_id, started_at, now_ns, requester, api_key_id, request_id,
                          action, context)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
on conflict (id) do nothing;

-- name: insert_audience_shape
insert into audience_shape (run_id, shape, tenant_id, policy_revision, allow, reasons, purposes,
                            input)
values ($1, $2, $3, $4, $5, $6, $7, $8)
on conflict (run_id, shape) do nothing;

-- name: insert_audience_member
insert into audience_member (run_id, chunk, shape, tenant_id, members, subject_ids,
                             purpose_keys, purpose_material, recorded_at_ns, consent_material,
                             event_uuid)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11);

-- name: get_decision
select id, decided_at, subject_id, id_type, requester, api_key_id, request_id, kind, batch_id,
       action, allow, reasons, purposes, policy_revision, input
from decision_log
where tenant_id = $1 and id = $2;

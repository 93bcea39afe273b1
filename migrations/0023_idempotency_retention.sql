-- Idempotency records are kept for a retention period (CONSENT_IDEMPOTENCY_RETENTION_DAYS,
-- default 30), then deleted by the service (consent/idempotency.py: keep_pruned): a client
-- retries within minutes, and neither the table nor the request hashes it holds should grow
-- for ever. The hourly prune finds the expired records by this index, oldest first.
create index idempotency_record_created on idempotency_record (created_at);

-- Network evidence kept with a consent or preference event (evidence_enc) is sealed with
-- associated data naming its event (consent/consents/history.py: evidence_context), from now on.
--
-- Before, it was sealed under the event kind's context alone: someone with write access to the
-- database could copy one event's ciphertext onto another event of the same subject, and the
-- history showed it as that event's proof (another address, another browser). Evidence sealed
-- before stays readable, but only for events whose id (a UUID v7, its time in the first 48
-- bits) was made before this migration was applied: an old ciphertext copied onto a newer event
-- opens under neither context. evidence_bound_since() returns that moment, fixed here (the
-- function body is written once, with the time of this transaction in it).
do $$
begin
    execute format(
        'create function evidence_bound_since() returns timestamptz language sql immutable '
        'as $f$ select %L::timestamptz $f$',
        now()
    );
end
$$;
grant execute on function evidence_bound_since() to consent_app;

comment on column consent_event.evidence_enc is
    'Network evidence (truncated IP, user agent), sealed under the subject''s data key with the '
    'event id in its associated data (events before evidence_bound_since(): without it).';
comment on column preference_event.evidence_enc is
    'Network evidence (truncated IP, user agent), sealed under the subject''s data key with the '
    'event id in its associated data (events before evidence_bound_since(): without it).';

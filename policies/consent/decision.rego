# METADATA
# title: Consent decision
# description: >-
#   Decides whether an action may run for a subject, from the tenant's purpose catalogue
#   (input.purposes) and the subject's consent state (input.consents). Fails closed: allow is
#   true only when no denial reason applies. Time comes from input.now_ns, never time.now_ns().
#   Schema: policies/schemas/input.json. Action and jurisdiction data: policies/data/*.json.
package consent.decision

import data.consent.actions
import data.consent.jurisdictions

# METADATA
# title: Decision document
# description: '{"allow": bool, "reasons": [sorted codes], "purposes": {purpose_key: code}}'
# entrypoint: true
result := {
	"allow": allow,
	"reasons": reasons,
	"purposes": purpose_reasons,
}

default allow := false

allow if count(denials) == 0

# Denial codes when anything is denied, otherwise the codes that allowed it.
reasons := sort(denials) if {
	count(denials) > 0
} else := sort(grants)

# Normalised views of the input: a missing or mistyped part reads as empty, which can only deny.
subject := object_or_empty(object.get(input, "subject", {}))

catalogue := object_or_empty(object.get(input, "purposes", {}))

consents := object_or_empty(object.get(input, "consents", {}))

now_ns := object.get(input, "now_ns", null)

objections := {key | some key in array_or_empty(object.get(subject, "objections", []))}

jurisdiction := object.get(subject, "jurisdiction", null)

action_name := object.get(input, "action", null)

action := actions[action_name]

needed := {key | some key in action.purposes}

purpose_reasons[key] := purpose_reason(
	object.get(catalogue, key, null),
	object.get(consents, key, null),
	key in objections,
	direct_marketing,
	now_ns,
) if {
	some key in needed
}

# The action markets to the subject directly (data.consent.actions[_].direct_marketing), so a
# refusal of any of its purposes is an objection under GDPR Art 21(2)-(3).
default direct_marketing := false

direct_marketing if action.direct_marketing == true

grants contains code if {
	some code in purpose_reasons
	startswith(code, "allowed.")
}

# METADATA
# title: A needed purpose is denied
# description: >-
#   Every purpose the action needs must be allowed on its own legal basis; the denial code is the
#   purpose's (denied.no_consent, denied.withdrawn, denied.expired, denied.stale, denied.objected,
#   denied.unknown_purpose).
denials contains code if {
	some code in purpose_reasons
	not startswith(code, "allowed.")
}

# METADATA
# title: Safety net for purposes without a reason
# description: A needed purpose that got no reason at all (malformed input) denies.
# custom:
#   error_id: denied.unknown_purpose
denials contains "denied.unknown_purpose" if {
	some key in needed
	not purpose_reasons[key]
}

# METADATA
# title: Unknown action
# description: Actions are a closed list (data.consent.actions); anything else is denied.
# custom:
#   error_id: denied.unknown_action
denials contains "denied.unknown_action" if {
	not actions[action_name]
}

# METADATA
# title: An action that names no purpose
# description: >-
#   Every action needs at least one purpose. One that names none (an empty or malformed
#   `purposes` in data.consent.actions) would otherwise be allowed with no reason at all: it is
#   denied like an unknown action. (Reloads refuse such data too; this keeps the policy closed
#   on its own.)
# custom:
#   error_id: denied.unknown_action
denials contains "denied.unknown_action" if {
	actions[action_name]
	count(needed) == 0
}

# METADATA
# title: Unknown subject
# description: Decisions are only made for subjects the ledger knows.
# custom:
#   error_id: denied.unknown_subject
denials contains "denied.unknown_subject" if {
	not subject.known == true
}

# METADATA
# title: Global Privacy Control
# description: >-
#   Where GPC has legal effect, it is an opt-out of sale, sharing and targeted advertising
#   (11 CCR 7025, 7026; other US states per data.consent.jurisdictions.gpc_legal_effect, from
#   the day each state's requirement began; US alone, the state not known, from the earliest
#   day). It neither gives nor withdraws a consent: elsewhere it changes nothing.
# custom:
#   error_id: denied.gpc
denials contains "denied.gpc" if {
	opt_out_scope(action)
	gpc_applies(subject.gpc, jurisdiction, now_ns)
}

# METADATA
# title: Children below the digital consent age
# description: >-
#   No personalisation, targeted advertising, sale or sharing without parental consent
#   (GDPR Art 8, COPPA 16 CFR 312).
# custom:
#   error_id: denied.child
denials contains "denied.child" if {
	child_scope(action)
	is_child(subject.age, jurisdiction)
	not subject.parental_consent == true
}

# METADATA
# title: A child's own consent is not enough
# description: >-
#   Below the digital consent age, a purpose that relies on consent needs the consent or
#   authorisation of a parent, whatever the action (GDPR Art 8(1); COPPA 16 CFR 312.5(a)).
# custom:
#   error_id: denied.child
denials contains "denied.child" if {
	some key in needed
	relies_on_consent(object.get(catalogue, key, null))
	is_child(subject.age, jurisdiction)
	not subject.parental_consent == true
}

# METADATA
# title: Children's data goes to third parties only with a separate parental consent
# description: >-
#   Where COPPA applies (data.consent.jurisdictions.separate_disclosure_consent_age), a parent's
#   consent to collection does not cover disclosure to third parties: that needs its own consent
#   (16 CFR 312.5(a)(2); separate consent under the 2025 amendments, compliance from
#   2026-04-22). Sale and sharing of such a child's data is denied unless the input carries
#   both input.subject.parental_consent and input.subject.parental_consent_third_parties (a
#   missing or mistyped one denies).
# custom:
#   error_id: denied.child
denials contains "denied.child" if {
	action.sale_or_share == true
	needs_separate_disclosure_consent(subject.age, jurisdiction)
	not parents_consented_to_disclosure
}

# METADATA
# title: Minors must opt in to sale or sharing
# description: >-
#   Below the minors' opt-in age (US-CA 16, Cal. Civ. Code 1798.120(c)) every purpose of a
#   sale/share action needs a current, affirmative consent, whatever its legal basis.
# custom:
#   error_id: denied.child
denials contains "denied.child" if {
	action.sale_or_share == true
	needs_minor_opt_in(subject.age, jurisdiction)
	not minor_opted_in
}

# METADATA
# title: Limit use of sensitive personal information
# description: Cal. Civ. Code 1798.121; 11 CCR 7027.
# custom:
#   error_id: denied.sensitive_limited
denials contains "denied.sensitive_limited" if {
	action.sensitive == true
	subject.limit_sensitive == true
}

minor_opted_in if {
	every key in needed {
		opted_in(object.get(consents, key, null), object.get(catalogue, key, {}), now_ns)
	}
}

# A parent consented to the collection and, separately, to the disclosure to third parties.
parents_consented_to_disclosure if {
	subject.parental_consent == true
	subject.parental_consent_third_parties == true
}

opted_in(consent, purpose, now) if consent_reason(consent, purpose, now) == "allowed.consent"

# METADATA
# title: Reason for one purpose
# description: >-
#   A refusal of direct marketing first (Art 21(3): absolute, whatever the basis; a purpose on
#   consent keeps its consent code), then strictly necessary, then the legal basis;
#   unrecognised entries deny.
purpose_reason(purpose, consent, objected, marketing, now) := "denied.unknown_purpose" if {
	not is_object(purpose)
} else := code if {
	marketing == true
	refused(consent)
	code := refusal_reason(purpose, consent, now)
} else := "allowed.strictly_necessary" if {
	purpose.strictly_necessary == true
} else := "allowed.contract" if {
	purpose.legal_basis == "contract"
} else := "allowed.legal_obligation" if {
	purpose.legal_basis == "legal_obligation"
} else := "denied.objected" if {
	purpose.legal_basis == "legitimate_interest"
	objected == true
} else := "allowed.legitimate_interest" if {
	purpose.legal_basis == "legitimate_interest"
} else := code if {
	purpose.legal_basis == "consent"
	code := consent_reason(consent, purpose, now)
} else := "denied.unknown_purpose"

# METADATA
# title: Reason for a consent-based purpose
# description: >-
#   Granted, not stale (material_version) and not expired (recorded_at_ns + max_age_ns >= now_ns).
#   Every check is written so that a missing or mistyped field denies.
consent_reason(c, purpose, now) := "denied.no_consent" if {
	not is_object(c)
} else := "denied.withdrawn" if {
	c.status == "withdrawn"
} else := "denied.no_consent" if {
	not c.status == "granted"
} else := "denied.stale" if {
	not current_version(c, purpose)
} else := "denied.expired" if {
	not within_max_age(c, purpose, now)
} else := "allowed.consent"

current_version(c, purpose) if {
	is_number(c.material_version)
	is_number(purpose.material_version)
	c.material_version >= purpose.material_version
}

within_max_age(_, purpose, _) if {
	purpose.max_age_ns == null
}

within_max_age(c, purpose, now) if {
	is_number(now)
	is_number(c.recorded_at_ns)
	is_number(purpose.max_age_ns)
	c.recorded_at_ns + purpose.max_age_ns >= now
}

# The subject said no to the purpose (a refusal or a withdrawal on record).
refused(c) if c.status in {"denied", "withdrawn"}

refusal_reason(purpose, consent, now) := consent_reason(consent, purpose, now) if {
	purpose.legal_basis == "consent"
} else := "denied.objected"

# The purpose is allowed only on the subject's consent (neither exempt nor on another basis).
relies_on_consent(purpose) if {
	purpose.legal_basis == "consent"
	not purpose.strictly_necessary == true
}

opt_out_scope(a) if a.sale_or_share == true

opt_out_scope(a) if a.targeted_advertising == true

child_scope(a) if a.personalization == true

child_scope(a) if a.targeted_advertising == true

child_scope(a) if a.sale_or_share == true

# GPC has legal effect in j at now: j is listed in gpc_legal_effect and now is not before its
# day. Fails closed: a listed j whose day or now cannot be read counts as in effect.
gpc_applies(gpc, j, now) if {
	gpc == true
	is_string(j)
	j in object.keys(gpc_days)
	not gpc_not_yet_in_effect(j, now)
}

gpc_days := object_or_empty(jurisdictions.gpc_legal_effect)

gpc_not_yet_in_effect(j, now) if {
	is_number(now)
	now < gpc_effective_ns(j)
}

# The first nanosecond of j's day (UTC); undefined unless the day is a real YYYY-MM-DD day,
# so that time.parse_ns never fails a decision.
gpc_effective_ns(j) := time.parse_ns("2006-01-02", day) if {
	day := gpc_days[j]
	iso_day(day)
}

# d is a string YYYY-MM-DD naming a day of the Gregorian calendar.
iso_day(d) if {
	is_string(d)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, d)
	month := to_number(substring(d, 5, 2))
	day := to_number(substring(d, 8, 2))
	month >= 1
	month <= 12
	day >= 1
	day <= days_in_month(to_number(substring(d, 0, 4)), month)
}

days_in_month(year, 2) := 29 if {
	leap_year(year)
} else := 28

days_in_month(_, month) := 30 if month in {4, 6, 9, 11}

days_in_month(_, month) := 31 if month in {1, 3, 5, 7, 8, 10, 12}

leap_year(year) if year % 400 == 0

leap_year(year) if {
	year % 4 == 0
	year % 100 != 0
}

is_child(age, j) if {
	is_number(age)
	age < digital_consent_age(j)
}

needs_minor_opt_in(age, j) if {
	is_number(age)
	age < jurisdictions.minor_opt_in_age[j]
}

needs_separate_disclosure_consent(age, j) if {
	is_number(age)
	age < separate_disclosure_consent_age(j)
}

# Subdivision ("US-CA"), then country ("US"); undefined (no such rule) elsewhere.
separate_disclosure_consent_age(j) := age if {
	age := jurisdictions.separate_disclosure_consent_age[j]
} else := age if {
	age := jurisdictions.separate_disclosure_consent_age[country(j)]
}

# Subdivision ("US-CA"), then country ("US"), then the default (GDPR Art 8: 16).
digital_consent_age(j) := age if {
	age := jurisdictions.digital_consent_age[j]
} else := age if {
	age := jurisdictions.digital_consent_age[country(j)]
} else := jurisdictions.digital_consent_age["default"]

country(j) := split(j, "-")[0] if is_string(j)

object_or_empty(x) := x if is_object(x) else := {}

array_or_empty(x) := x if is_array(x) else := []

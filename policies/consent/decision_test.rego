# METADATA
# title: Tests for consent.decision
# description: One allow and one deny test per rule, each asserting the reasons.
package consent.decision_test

import data.consent.decision

now := 1750000000000000000

day := 86400000000000

# A known adult in Germany who granted every consent purpose at version 2, a day ago.
catalogue := {
	"essential": {
		"legal_basis": "legitimate_interest", "max_age_ns": null,
		"strictly_necessary": true, "material_version": 1,
	},
	"analytics": consent_purpose,
	"personalization": consent_purpose,
	"advertising": consent_purpose,
	"email_marketing": consent_purpose,
	"sms_marketing": consent_purpose,
	"data_sharing": consent_purpose,
	"data_sale": consent_purpose,
	"offline_join": consent_purpose,
}

consent_purpose := {
	"legal_basis": "consent", "max_age_ns": null,
	"strictly_necessary": false, "material_version": 2,
}

granted := {"status": "granted", "recorded_at_ns": now - day, "material_version": 2}

base := {
	"now_ns": now,
	"action": "web.analytics",
	"subject": {
		"known": true, "jurisdiction": "DE", "age": 30, "parental_consent": false,
		"parental_consent_third_parties": false, "gpc": false, "limit_sensitive": false,
		"objections": [],
	},
	"purposes": catalogue,
	"consents": {key: granted | some key, _ in catalogue},
}

# The decision for base deep-merged with patch.
decide(patch) := r if {
	r := decision.result with input as object.union(base, patch)
}

# The decision for base deep-merged with patch, then with the JSON pointers in paths removed.
decide_without(patch, paths) := r if {
	r := decision.result with input as json.remove(object.union(base, patch), paths)
}

# The decision for one action with the subject deep-merged with subject_patch.
personalise(subject_patch) := decide({
	"action": "personalize.recommendations",
	"subject": subject_patch,
})

sell(subject_patch) := decide({"action": "data.sell.partner", "subject": subject_patch})

target(subject_patch) := decide({"action": "ads.targeted", "subject": subject_patch})

allowed(r, reasons) if {
	r.allow == true
	r.reasons == reasons
}

denied(r, reasons) if {
	r.allow == false
	r.reasons == reasons
}

# --- fail closed -------------------------------------------------------------------------------

test_empty_input_denies if {
	r := decision.result with input as {}
	denied(r, ["denied.unknown_action", "denied.unknown_subject"])
	r.purposes == {}
}

test_mistyped_input_parts_deny if {
	r := decide({"subject": {"objections": "analytics"}, "purposes": []})
	denied(r, ["denied.unknown_purpose"])
}

# --- consent: granted, missing, refused, withdrawn ------------------------------------------

test_consent_granted_allows if {
	r := decide({})
	allowed(r, ["allowed.consent"])
	r.purposes == {"analytics": "allowed.consent"}
}

test_consent_missing_denies if {
	r := decide_without({}, ["consents/analytics"])
	denied(r, ["denied.no_consent"])
	r.purposes == {"analytics": "denied.no_consent"}
}

test_consent_refused_denies if {
	denied(decide({"consents": {"analytics": {"status": "denied"}}}), ["denied.no_consent"])
}

test_consent_unrecognised_status_denies if {
	denied(decide({"consents": {"analytics": {"status": "maybe"}}}), ["denied.no_consent"])
}

test_consent_withdrawn_denies if {
	denied(decide({"consents": {"analytics": {"status": "withdrawn"}}}), ["denied.withdrawn"])
}

test_every_needed_purpose_is_required if {
	allowed(decide({"action": "ads.retarget"}), ["allowed.consent"])
	r := decide({"action": "ads.retarget", "consents": {"data_sharing": {"status": "withdrawn"}}})
	denied(r, ["denied.withdrawn"])
	r.purposes == {"advertising": "allowed.consent", "data_sharing": "denied.withdrawn"}
}

# --- expiry: recorded_at_ns + max_age_ns < now_ns ---------------------------------------------

test_consent_within_max_age_allows if {
	allowed(decide({"purposes": {"analytics": {"max_age_ns": day}}}), ["allowed.consent"])
}

test_consent_expired_denies if {
	r := decide({"purposes": {"analytics": {"max_age_ns": day - 1}}})
	denied(r, ["denied.expired"])
}

test_missing_now_ns_counts_as_expired if {
	r := decide_without({"purposes": {"analytics": {"max_age_ns": day}}}, ["now_ns"])
	denied(r, ["denied.expired"])
}

test_no_max_age_never_expires if {
	allowed(decide({"consents": {"analytics": {"recorded_at_ns": 0}}}), ["allowed.consent"])
}

# --- staleness: consent.material_version < purpose.material_version -------------------------

test_consent_current_version_allows if {
	allowed(decide({"consents": {"analytics": {"material_version": 3}}}), ["allowed.consent"])
}

test_consent_stale_denies if {
	denied(decide({"purposes": {"analytics": {"material_version": 3}}}), ["denied.stale"])
}

test_mistyped_material_version_is_stale if {
	denied(decide({"consents": {"analytics": {"material_version": "9"}}}), ["denied.stale"])
}

# --- other legal bases --------------------------------------------------------------------

test_legitimate_interest_allows_without_consent if {
	r := decide_without(
		{"purposes": {"analytics": {"legal_basis": "legitimate_interest"}}},
		["consents/analytics"],
	)
	allowed(r, ["allowed.legitimate_interest"])
}

test_legitimate_interest_objected_denies if {
	r := decide({
		"purposes": {"analytics": {"legal_basis": "legitimate_interest"}},
		"subject": {"objections": ["analytics"]},
	})
	denied(r, ["denied.objected"])
}

test_objection_to_another_purpose_is_ignored if {
	r := decide({
		"purposes": {"analytics": {"legal_basis": "legitimate_interest"}},
		"subject": {"objections": ["email_marketing"]},
	})
	allowed(r, ["allowed.legitimate_interest"])
}

test_contract_allows if {
	r := decide({
		"purposes": {"analytics": {"legal_basis": "contract"}},
		"consents": {"analytics": {"status": "withdrawn"}},
	})
	allowed(r, ["allowed.contract"])
}

test_legal_obligation_allows if {
	r := decide({"purposes": {"analytics": {"legal_basis": "legal_obligation"}}})
	allowed(r, ["allowed.legal_obligation"])
}

test_unrecognised_legal_basis_denies if {
	denied(decide({"purposes": {"analytics": {"legal_basis": "vibes"}}}), ["denied.unknown_purpose"])
}

test_strictly_necessary_always_allowed if {
	r := decide({"action": "service.essential", "subject": {"objections": ["essential"]}})
	allowed(r, ["allowed.strictly_necessary"])
}

test_not_strictly_necessary_needs_its_basis if {
	r := decide({
		"action": "service.essential",
		"purposes": {"essential": {"strictly_necessary": false}},
		"subject": {"objections": ["essential"]},
	})
	denied(r, ["denied.objected"])
}

# --- direct marketing: an objection is absolute (GDPR Art 21(3)) ---------------------------

# email.marketing with email_marketing on basis (a purpose patch) and the subject's choice.
market(purpose_patch, status) := decide({
	"action": "email.marketing",
	"purposes": {"email_marketing": purpose_patch},
	"consents": {"email_marketing": {"status": status}},
})

test_refusing_direct_marketing_denies_on_any_basis if {
	every status in ["denied", "withdrawn"] {
		every basis in ["contract", "legal_obligation", "legitimate_interest"] {
			r := market({"legal_basis": basis}, status)
			denied(r, ["denied.objected"])
			r.purposes == {"email_marketing": "denied.objected"}
		}
		necessary := {"legal_basis": "contract", "strictly_necessary": true}
		denied(market(necessary, status), ["denied.objected"])
	}
}

test_refusing_direct_marketing_on_consent_keeps_its_consent_code if {
	denied(market({}, "withdrawn"), ["denied.withdrawn"])
	denied(market({}, "denied"), ["denied.no_consent"])
	necessary := {"strictly_necessary": true, "material_version": 3}
	denied(market(necessary, "withdrawn"), ["denied.withdrawn"])
}

test_direct_marketing_without_a_refusal_follows_its_basis if {
	allowed(market({"legal_basis": "contract"}, "granted"), ["allowed.contract"])
	r := decide_without(
		{"action": "email.marketing", "purposes": {"email_marketing": {"legal_basis": "contract"}}},
		["consents/email_marketing"],
	)
	allowed(r, ["allowed.contract"])
}

test_targeted_advertising_is_direct_marketing if {
	r := decide({
		"action": "ads.targeted",
		"purposes": {"advertising": {"legal_basis": "contract"}},
		"consents": {"advertising": {"status": "withdrawn"}},
	})
	denied(r, ["denied.objected"])
}

test_a_refusal_outside_direct_marketing_is_not_an_objection if {
	r := decide({
		"action": "data.share.partner",
		"purposes": {"data_sharing": {"legal_basis": "contract"}},
		"consents": {"data_sharing": {"status": "withdrawn"}},
	})
	allowed(r, ["allowed.contract"])
}

# Every action says what it is: a flag that is missing reads as false, which would skip a rule.
test_actions_data_is_well_formed if {
	flags := {
		"sale_or_share", "targeted_advertising", "sensitive", "direct_marketing", "personalization",
	}
	count(data.consent.actions) > 0
	every _, a in data.consent.actions {
		is_array(a.purposes)
		count(a.purposes) > 0
		every p in a.purposes {
			is_string(p)
		}
		object.keys(a) == flags | {"purposes"}
		every f in flags {
			is_boolean(a[f])
		}
	}
}

# --- GPC ---------------------------------------------------------------------------------

test_gpc_denies_sale_where_it_has_legal_effect if {
	r := sell({"gpc": true, "jurisdiction": "US-CA"})
	denied(r, ["denied.gpc"])
	r.purposes == {"data_sale": "allowed.consent"}
}

test_gpc_denies_targeted_advertising if {
	denied(target({"gpc": true, "jurisdiction": "US-CO"}), ["denied.gpc"])
}

test_gpc_without_legal_effect_allows if {
	allowed(sell({"gpc": true, "jurisdiction": "US-VA"}), ["allowed.consent"])
	allowed(sell({"gpc": true, "jurisdiction": "DE"}), ["allowed.consent"])
}

test_gpc_does_not_touch_first_party_uses if {
	r := decide({"action": "web.analytics", "subject": {"gpc": true, "jurisdiction": "US-CA"}})
	allowed(r, ["allowed.consent"])
}

test_no_gpc_signal_allows_sale if {
	allowed(sell({"jurisdiction": "US-CA"}), ["allowed.consent"])
}

# The first nanosecond of an ISO day (UTC).
day_ns(d) := time.parse_ns("2006-01-02", d)

# A sale asked at `at` by a subject with a GPC signal in jurisdiction j.
sell_with_gpc_at(j, at) := decide({
	"now_ns": at,
	"action": "data.sell.partner",
	"subject": {"gpc": true, "jurisdiction": j},
})

test_gpc_has_effect_from_the_states_day if {
	denied(sell_with_gpc_at("US-CO", day_ns("2024-07-01")), ["denied.gpc"])
	denied(target({"gpc": true, "jurisdiction": "US-CO"}), ["denied.gpc"])
}

test_gpc_before_the_states_day_allows if {
	allowed(sell_with_gpc_at("US-CO", day_ns("2024-07-01") - 1), ["allowed.consent"])
	r := decide({
		"now_ns": day_ns("2024-06-30"),
		"action": "ads.targeted",
		"subject": {"gpc": true, "jurisdiction": "US-CO"},
	})
	allowed(r, ["allowed.consent"])
}

test_gpc_day_per_state if {
	# base now is 2025-06-15: in effect in Texas (2025-01-01), not yet in New Jersey
	# (2025-07-15), Oregon (2026-01-01) or Maryland (2026-04-01).
	denied(sell({"gpc": true, "jurisdiction": "US-TX"}), ["denied.gpc"])
	allowed(sell({"gpc": true, "jurisdiction": "US-NJ"}), ["allowed.consent"])
	allowed(sell({"gpc": true, "jurisdiction": "US-OR"}), ["allowed.consent"])
	allowed(sell({"gpc": true, "jurisdiction": "US-MD"}), ["allowed.consent"])
	allowed(sell_with_gpc_at("US-NJ", day_ns("2025-07-15") - 1), ["allowed.consent"])
	denied(sell_with_gpc_at("US-NJ", day_ns("2025-07-15")), ["denied.gpc"])
	denied(sell_with_gpc_at("US-OR", day_ns("2026-01-01")), ["denied.gpc"])
	denied(sell_with_gpc_at("US-MD", day_ns("2026-04-01")), ["denied.gpc"])
}

test_gpc_in_california_since_the_ccpa_regulations if {
	allowed(sell_with_gpc_at("US-CA", day_ns("2020-08-14") - 1), ["allowed.consent"])
	denied(sell_with_gpc_at("US-CA", day_ns("2020-08-14")), ["denied.gpc"])
}

# A US consumer whose state is not known may live where GPC has legal effect: honoured.
test_gpc_in_the_us_with_the_state_not_known_fails_closed if {
	denied(sell({"gpc": true, "jurisdiction": "US"}), ["denied.gpc"])
	denied(target({"gpc": true, "jurisdiction": "US"}), ["denied.gpc"])
	allowed(sell({"gpc": true, "jurisdiction": "US-VA"}), ["allowed.consent"])
	allowed(sell_with_gpc_at("US", day_ns("2020-08-14") - 1), ["allowed.consent"])
}

test_gpc_without_a_readable_time_fails_closed if {
	patch := {"action": "data.sell.partner", "subject": {"gpc": true, "jurisdiction": "US-OR"}}
	denied(decide_without(patch, ["now_ns"]), ["denied.gpc"])
	denied(sell_with_gpc_at("US-OR", null), ["denied.gpc"])
}

test_gpc_with_an_unreadable_day_fails_closed if {
	days := {
		"US-OR": "soon", "US-NJ": 20250715, "US-MD": null, "US-DE": false, "US-CO": "2024-7-1",
		"US-NH": "2025-02-30", # would fail time.parse_ns, so it is never parsed
	}
	every j, _ in days {
		r := sell_with_gpc_at(j, 0) with data.consent.jurisdictions.gpc_legal_effect as days
		denied(r, ["denied.gpc"])
	}
}

test_iso_days if {
	every d in ["2024-02-29", "2000-02-29", "2025-12-31", "2026-04-30"] {
		decision.iso_day(d)
		time.format([day_ns(d), "UTC", "2006-01-02"]) == d
	}
	not_days := [
		"2025-02-29", "1900-02-29", "2025-04-31", "2025-13-01", "2025-00-10", "2025-7-1", "",
		20250701, null,
	]
	every d in not_days {
		not decision.iso_day(d)
	}
}

# Refuses a bundle whose GPC data the policy could not read (checked at start and reload).
test_gpc_legal_effect_data_is_well_formed if {
	effect := data.consent.jurisdictions.gpc_legal_effect
	is_object(effect)
	count(effect) > 0
	every j, d in effect {
		regex.match(`^US(-[A-Z]{2})?$`, j)
		decision.iso_day(d)
	}
}

test_gpc_legal_effect_has_a_source_per_state if {
	effect := data.consent.jurisdictions.gpc_legal_effect
	sources := data.consent.jurisdictions.gpc_legal_effect_sources
	is_object(effect)
	is_object(sources)
	object.keys(sources) == object.keys(effect)
	every _, source in sources {
		is_string(source.statute)
		count(source.sources) > 0
	}
}

test_digital_consent_age_has_a_source_per_country if {
	ages := data.consent.jurisdictions.digital_consent_age
	sources := data.consent.jurisdictions.digital_consent_age_sources
	is_object(ages)
	is_object(sources)
	object.keys(sources) == object.keys(ages)
	every _, source in sources {
		is_string(source.provision)
		count(source.sources) > 0
	}
}

# --- children ----------------------------------------------------------------------------

test_child_below_consent_age_is_not_personalised if {
	r := personalise({"age": 15})
	denied(r, ["denied.child"])
}

test_child_with_parental_consent_is_personalised if {
	r := personalise({"age": 15, "parental_consent": true})
	allowed(r, ["allowed.consent"])
}

test_child_is_not_targeted if {
	denied(target({"age": 12, "jurisdiction": "US"}), ["denied.child"])
}

# GDPR Art 8: below the digital consent age a child's own consent is not enough for any purpose
# on consent; other bases and strictly necessary purposes are not consent.
test_child_own_consent_is_not_enough_for_any_action if {
	denied(decide({"action": "web.analytics", "subject": {"age": 10}}), ["denied.child"])
	denied(decide({"action": "email.marketing", "subject": {"age": 15}}), ["denied.child"])
	r := decide({"action": "email.marketing", "subject": {"age": 10, "parental_consent": true}})
	allowed(r, ["allowed.consent"])
}

test_child_rule_leaves_other_bases_alone if {
	li := {"purposes": {"analytics": {"legal_basis": "legitimate_interest"}}}
	allowed(decide(object.union(li, {"subject": {"age": 10}})), ["allowed.legitimate_interest"])
	r := decide({"action": "service.essential", "subject": {"age": 10}})
	allowed(r, ["allowed.strictly_necessary"])
	necessary := {"purposes": {"analytics": {"strictly_necessary": true}}, "subject": {"age": 10}}
	allowed(decide(necessary), ["allowed.strictly_necessary"])
}

test_child_who_refused_gets_both_reasons if {
	r := decide({
		"action": "email.marketing", "subject": {"age": 12},
		"consents": {"email_marketing": {"status": "denied"}},
	})
	denied(r, ["denied.child", "denied.no_consent"])
}

test_consent_age_per_country if {
	denied(personalise({"age": 14, "jurisdiction": "FR"}), ["denied.child"])
	allowed(personalise({"age": 15, "jurisdiction": "FR"}), ["allowed.consent"])
	allowed(personalise({"age": 13, "jurisdiction": "GB"}), ["allowed.consent"])
}

test_consent_age_defaults_to_16 if {
	denied(personalise({"age": 15, "jurisdiction": "XX"}), ["denied.child"])
	denied(personalise({"age": 15, "jurisdiction": null}), ["denied.child"])
	allowed(personalise({"age": 16, "jurisdiction": null}), ["allowed.consent"])
}

test_unknown_age_is_not_a_child if {
	allowed(personalise({"age": null}), ["allowed.consent"])
}

test_subdivision_falls_back_to_country_age if {
	allowed(personalise({"age": 13, "jurisdiction": "US-NY"}), ["allowed.consent"])
	denied(personalise({"age": 12, "jurisdiction": "US-NY"}), ["denied.child"])
}

test_california_minor_needs_opt_in_for_sale if {
	r := decide_without(
		{
			"action": "data.sell.partner", "subject": {"age": 15, "jurisdiction": "US-CA"},
			"purposes": {"data_sale": {"legal_basis": "legitimate_interest"}},
		},
		["consents/data_sale"],
	)
	denied(r, ["denied.child"])
	r.purposes == {"data_sale": "allowed.legitimate_interest"}
}

test_california_minor_who_opted_in_may_be_sold_to if {
	allowed(sell({"age": 15, "jurisdiction": "US-CA"}), ["allowed.consent"])
	r := decide_without(
		{
			"action": "data.sell.partner", "subject": {"age": 16, "jurisdiction": "US-CA"},
			"purposes": {"data_sale": {"legal_basis": "legitimate_interest"}},
		},
		["consents/data_sale"],
	)
	allowed(r, ["allowed.legitimate_interest"])
}

test_california_under_13_also_needs_a_parent if {
	denied(sell({"age": 12, "jurisdiction": "US-CA"}), ["denied.child"])
}

# COPPA 16 CFR 312.5(a)(2): a parent's consent to collection does not cover disclosure to third
# parties: no sale or sharing below 13 without the separate consent to it as well.
test_us_child_is_not_sold_or_shared_on_general_parental_consent if {
	every j in ["US-CA", "US-NY", "US"] {
		denied(sell({"age": 12, "jurisdiction": j, "parental_consent": true}), ["denied.child"])
		subject := {"age": 12, "jurisdiction": j, "parental_consent": true}
		denied(decide({"action": "data.share.partner", "subject": subject}), ["denied.child"])
	}
	allowed(sell({"age": 13, "jurisdiction": "US-NY"}), ["allowed.consent"])
	allowed(target({"age": 12, "jurisdiction": "US", "parental_consent": true}), ["allowed.consent"])
}

both_parental_consents := {"parental_consent": true, "parental_consent_third_parties": true}

test_us_child_is_sold_or_shared_with_both_parental_consents if {
	every j in ["US-CA", "US-NY", "US"] {
		subject := object.union({"age": 12, "jurisdiction": j}, both_parental_consents)
		allowed(sell(subject), ["allowed.consent"])
		allowed(decide({"action": "data.share.partner", "subject": subject}), ["allowed.consent"])
		allowed(decide({"action": "ads.retarget", "subject": subject}), ["allowed.consent"])
	}
}

test_separate_disclosure_consent_does_not_replace_the_parents_consent if {
	every j in ["US-CA", "US-NY", "US"] {
		subject := {"age": 12, "jurisdiction": j, "parental_consent_third_parties": true}
		denied(sell(subject), ["denied.child"])
		denied(decide({"action": "data.share.partner", "subject": subject}), ["denied.child"])
	}
}

test_separate_disclosure_consent_must_be_true if {
	every value in [false, "true", 1, null] {
		subject := {
			"age": 12, "jurisdiction": "US-NY", "parental_consent": true,
			"parental_consent_third_parties": value,
		}
		denied(sell(subject), ["denied.child"])
	}
	r := decide_without(
		{
			"action": "data.sell.partner",
			"subject": object.union({"age": 12, "jurisdiction": "US-NY"}, both_parental_consents),
		},
		["subject/parental_consent_third_parties"],
	)
	denied(r, ["denied.child"])
}

test_separate_disclosure_consent_leaves_the_other_child_rules_alone if {
	subject := object.union({"age": 12, "jurisdiction": "US-CA"}, both_parental_consents)
	r := decide_without({"action": "data.sell.partner", "subject": subject}, ["consents/data_sale"])
	denied(r, ["denied.child", "denied.no_consent"])
	withdrawn := {"data_sale": {"status": "withdrawn"}}
	r2 := decide({"action": "data.sell.partner", "subject": subject, "consents": withdrawn})
	denied(r2, ["denied.child", "denied.withdrawn"])
	gpc := object.union(subject, {"gpc": true})
	denied(sell(gpc), ["denied.gpc"])
	eu := {"age": 12, "jurisdiction": "DE", "parental_consent_third_parties": true}
	denied(sell(eu), ["denied.child"])
}

test_separate_disclosure_consent_is_a_us_rule if {
	allowed(sell({"age": 12, "jurisdiction": "DE", "parental_consent": true}), ["allowed.consent"])
	allowed(sell({"age": 12, "jurisdiction": "GB", "parental_consent": true}), ["allowed.consent"])
}

test_separate_disclosure_consent_age_has_a_source if {
	ages := data.consent.jurisdictions.separate_disclosure_consent_age
	sources := data.consent.jurisdictions.separate_disclosure_consent_age_sources
	object.keys(sources) == object.keys(ages)
	every _, age in ages {
		is_number(age)
	}
	every _, source in sources {
		is_string(source.provision)
		count(source.sources) > 0
	}
}

# --- sensitive personal information --------------------------------------------------------

test_limit_sensitive_denies_sensitive_use if {
	r := decide({"action": "profile.join_offline", "subject": {"limit_sensitive": true}})
	denied(r, ["denied.sensitive_limited"])
}

test_sensitive_use_without_limit_allows if {
	allowed(decide({"action": "profile.join_offline"}), ["allowed.consent"])
}

test_limit_sensitive_leaves_other_actions_alone if {
	r := decide({"action": "email.marketing", "subject": {"limit_sensitive": true}})
	allowed(r, ["allowed.consent"])
}

# --- unknown action, purpose, subject ------------------------------------------------------

test_unknown_action_denies if {
	r := decide({"action": "telepathy.scan"})
	denied(r, ["denied.unknown_action"])
	r.purposes == {}
}

test_an_action_that_names_no_purpose_denies if {
	every purposes in [[], "email_marketing", null, {}] {
		r := decide({"action": "email.marketing"}) with data.consent.actions["email.marketing"].purposes as purposes
		denied(r, ["denied.unknown_action"])
	}
}

test_unknown_purpose_denies if {
	r := decide_without({"action": "sms.marketing"}, ["purposes/sms_marketing"])
	denied(r, ["denied.unknown_purpose"])
	r.purposes == {"sms_marketing": "denied.unknown_purpose"}
}

test_unknown_subject_denies if {
	denied(decide({"subject": {"known": false}}), ["denied.unknown_subject"])
	denied(decide_without({}, ["subject/known"]), ["denied.unknown_subject"])
}

# --- reasons -------------------------------------------------------------------------------

test_all_denials_are_reported_sorted if {
	r := decide({
		"action": "ads.retarget",
		"subject": {"known": false, "gpc": true, "jurisdiction": "US-CA", "age": 12},
		"consents": {"advertising": {"status": "withdrawn"}},
	})
	denied(r, ["denied.child", "denied.gpc", "denied.unknown_subject", "denied.withdrawn"])
}

test_grants_are_reported_sorted if {
	r := decide({"action": "ads.retarget", "purposes": {"data_sharing": {"legal_basis": "contract"}}})
	allowed(r, ["allowed.consent", "allowed.contract"])
}

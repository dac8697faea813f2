# Tests for the messages (messages.rego and the catalogue messages/*/data.json):
# parity of the languages, the French answers of the decision-flow seed, every
# built-in code in both languages, and each kind of parameter.
package tollgate.messages_test

import data.tollgate
import data.tollgate.controls_test as c
import data.tollgate.decision_test as t
import data.tollgate.global
import data.tollgate.incident
import data.tollgate.licence
import data.tollgate.local
import data.tollgate.messages
import data.tollgate.resolve

# --- parity: every key in every language ------------------------------------------

# The [language, what, key] that one language has and another lacks.
untranslated(catalogue) := {[lang, part, key] |
	some other, entry in catalogue
	some part in ["messages", "terms"]
	some key, _ in entry[part]
	some lang, translation in catalogue
	lang != other
	not translation[part][key]
}

test_every_key_has_a_message_in_every_language if {
	count(data.messages) >= 2
	untranslated(data.messages) == set()
}

test_a_message_in_one_language_only_is_found if {
	one_sided := json.patch(data.messages, [{"op": "add", "path": "/fr/messages/change_board", "value": "Le comité se réunit à 14:00."}])
	untranslated(one_sided) == {["en", "messages", "change_board"]}
	missing_term := json.patch(data.messages, [{"op": "remove", "path": "/en/terms/sunday"}])
	untranslated(missing_term) == {["en", "terms", "sunday"]}
}

test_every_language_shows_times_with_their_offset if {
	every entry in data.messages {
		contains(entry.time_format, "07:00")
	}
}

# --- the decision-flow seed's answers, in French -------------------------------------

french(doc) := object.union(doc, {"context": object.union(doc.context, {"language": "fr"})})

decide(doc) := d if {
	d := tollgate.decision with input as doc
		with data.tollgate.config.global_policy as t.global_policy
		with data.tollgate.config.projects as t.projects
}

seed_fields(d) := {k: d[k] | some k in ["status", "reasons", "project", "pipeline", "branch"]}

test_seed_accepted_answer_in_french if {
	seed_fields(decide(french(t.base_input))) == {
		"status": "accepted",
		"reasons": [],
		"project": "service-api",
		"pipeline": "deploy-prod",
		"branch": "main",
	}
}

# The seed's message, "Cooldown actif pour ce pipeline sur cette branche.", is
# the first sentence of tollgate's; the rest says which pipeline and branch
# and when the cooldown ends, in the policy's time zone with its offset.
test_seed_cooldown_answer_in_french if {
	d := decide(french(c.with_context(t.base_input, {"cooldown": {"last_accepted_ns": t.weekday_10h - (29 * t.minute)}})))
	seed_fields(d) == {
		"status": "refused",
		"reasons": [{
			"code": "cooldown",
			"message": "Cooldown actif pour ce pipeline sur cette branche. Pipeline « deploy-prod », branche « main » : dernier déploiement accepté le 10/06/2026 09:31:00 (UTC+02:00), prochain autorisé à partir du 10/06/2026 10:01:00 (UTC+02:00).",
		}],
		"project": "service-api",
		"pipeline": "deploy-prod",
		"branch": "main",
	}
	startswith(d.reasons[0].message, "Cooldown actif pour ce pipeline sur cette branche.")
}

# --- every built-in code, in both languages ------------------------------------------

hotfix_in_staging := object.union(t.base_input, {"request": object.union(t.request, {"pipeline": "hotfix-prod", "branch": "hotfix/1", "metadata": object.union(t.request.metadata, {"environment": "staging"})})})

in_env(doc, env) := object.union(doc, {"request": object.union(doc.request, {"metadata": object.union(doc.request.metadata, {"environment": env})})})

with_request(doc, fields) := object.union(doc, {"request": object.union(doc.request, fields)})

finding(id, score) := {"id": id, "package": "p", "version": "1", "severity": "high", "vex_status": "", "cvss": {"score": score, "version": "3.1", "vector": "", "source": "nvd"}}

unscored := {"id": "GHSA-xxxx-0003", "package": "left-pad", "version": "1", "severity": "unknown", "vex_status": ""}

gated := json.patch(t.projects, [{"op": "add", "path": "/service-api/risk", "value": {
	"max_cvss": 7.0, "max_unknowns": 0, "block_new_findings": true, "max_scan_age_hours": 1,
}}])

scanned := object.union(
	c.with_context(t.base_input, {"baseline": {
		"scanned_at_ns": 0, "unidentified": 0, "decision_id": "d-0",
		"findings": [finding("CVE-1", 2.0)],
	}}),
	{"scan": {"scanned_at_ns": t.weekday_10h - (3 * c.hour), "unidentified": 1, "findings": [finding("CVE-1", 9.8), finding("CVE-2", 8.1), unscored]}},
)

waived_findings := c.with_context(scanned, {"exceptions": [
	object.union(c.waiver("risk_threshold_exceeded"), {"finding_id": "CVE-1"}),
	object.union(c.waiver("risk_drift"), {"id": "exc-2", "finding_id": "CVE-2"}),
]})

# Every reason and waived reason the rules give for the requests below,
# rendered in language lang as decision.rego renders them. (The rules, not
# the whole decision: when a refusal clears is not what is tested, and it
# would make this test too slow for the reload's test run.)
said(lang) := [r |
	some [doc, policy, projects] in scenarios
	some r in messages.render(given) with input as object.union(doc, {"context": object.union(doc.context, {"language": lang})})
		with data.tollgate.config.global_policy as policy
		with data.tollgate.config.projects as projects
]

# [input, global policy, projects] of requests that, together, give every
# built-in code, in few evaluations.
scenarios := [
	# A Saturday in a freeze, out of the windows, on a branch not allowed,
	# with an expired licence, a cooldown, an incident, an emergency freeze,
	# and a scan that fails every gate, two of its findings waived.
	[everything, t.global_policy, gated],
	[c.with_context(with_request(t.base_input, {"repository": "org/unknown"}), {"licence": {"status": "invalid", "detail": "bad signature"}}), t.global_policy, t.projects],
	[with_request(t.base_input, {"pipeline": "nightly"}), t.global_policy, t.projects],
	[hotfix_in_staging, t.global_policy, t.projects],
	[in_env(t.base_input, "qa"), t.global_policy, t.projects],
	[t.base_input, t.global_policy, json.patch(gated, [{"op": "add", "path": "/service-api/risk/require_scan", "value": true}])],
	[with_request(t.base_input, {"repository": "org/payments", "metadata": object.union(t.request.metadata, {"initiator": "alice"})}), t.global_policy, t.projects],
	[
		t.base_input, object.union(t.global_policy, {"freezes": [
			{"id": "weekly", "reason": "Maintenance", "weekly": {"days": ["wednesday"], "start": "09:00", "end": "11:00"}},
			{"id": "monthly", "monthly": {"days": [10], "start": "09:00", "end": "11:00"}},
			{"id": "yearly", "reason": "Maintenance", "yearly": {"dates": ["06-10"], "start": "09:00", "end": "11:00"}},
		]}),
		t.projects,
	],
]

everything := object.union(with_request(c.frozen, {"branch": "feature/x"}), {
	"context": object.union(waived_findings.context, {
		"now_ns": t.frozen_saturday_7h,
		"licence": {"status": "expired", "detail": "expired at 2026-01-01T00:00:00Z"},
		"cooldown": {"last_accepted_ns": t.frozen_saturday_7h - t.minute},
		"incident": object.union(c.incident, {"expires_ns": t.frozen_saturday_7h + c.hour}),
		"freezes": [object.union(c.emergency, {"expires_ns": t.frozen_saturday_7h + c.hour})],
	}),
	"scan": object.union(waived_findings.scan, {"scanned_at_ns": t.frozen_saturday_7h - (3 * c.hour)}),
})

given := array.concat(
	array.concat(array.concat(licence.reasons, resolve.reasons), array.concat(global.reasons, incident.reasons)),
	array.concat(local.findings, local.waived),
)

built_in_codes := {
	"licence_expired", "licence_invalid", "project_not_managed", "freeze_active", "time_window_violation",
	"weekend_violation", "incident_mode", "branch_not_allowed", "pipeline_not_allowed", "cooldown",
	"scan_missing", "scan_stale", "risk_threshold_exceeded", "unknowns_exceeded", "risk_drift",
	"initiator_not_allowed",
}

# One test per language, each well within the test time budget of a
# reload's test run.
test_every_built_in_code_is_said_in_french if {
	said_in("fr")
}

test_every_built_in_code_is_said_in_english if {
	said_in("en")
}

said_in(lang) if {
	rs := said(lang)
	{r.code | some r in rs} == built_in_codes
	every r in rs {
		r.message != ""
		not contains(r.message, "{")
		not r.missing_template
	}
}

# --- French forms ------------------------------------------------------------------

test_french_numbers_use_a_decimal_comma if {
	d := tollgate.decision with input as french(scanned)
		with data.tollgate.config.global_policy as t.global_policy
		with data.tollgate.config.projects as gated
	d.reasons[1] == {
		"code": "risk_threshold_exceeded",
		"message": "2 vulnérabilité(s) au-delà du risque autorisé pour production (CVSS max 7, risque max -) ; les pires : CVE-1 (CVSS 9,8, risque 4,9), CVE-2 (CVSS 8,1, risque 4,1).",
	}
}

test_french_weekdays_and_windows if {
	d := decide(french(c.frozen))
	[r.message | some r in d.reasons] == [
		"Le gel « summer-sale » est actif jusqu'au 15/07/2026 00:00:00 (UTC+02:00) : Summer sale.",
		"samedi 07:00 (Europe/Paris) est en dehors des fenêtres de déploiement de production : lundi,mardi,mercredi,jeudi,vendredi 08:00-18:00.",
		"Les déploiements vers production ne sont pas autorisés le week-end (nous sommes samedi, fuseau Europe/Paris).",
	]
}

test_french_times_in_winter_show_their_offset if {
	winter := time.parse_rfc3339_ns("2026-12-02T10:00:00+01:00")
	doc := c.with_context(french(t.base_input), {"now_ns": winter, "cooldown": {"last_accepted_ns": winter - t.minute}})
	endswith(decide(doc).reasons[0].message, "dernier déploiement accepté le 02/12/2026 09:59:00 (UTC+01:00), prochain autorisé à partir du 02/12/2026 10:29:00 (UTC+01:00).")
}

# --- choosing the language ------------------------------------------------------------

branch_refused := with_request(t.base_input, {"branch": "feature/x"})

test_without_a_language_the_policy_default_speaks if {
	decide(branch_refused).reasons[0].message == `Branch "feature/x" may not run pipeline "deploy-prod"; allowed: main, release/*.`
	d := tollgate.decision with input as branch_refused
		with data.tollgate.config.global_policy as object.union(t.global_policy, {"language": "fr"})
		with data.tollgate.config.projects as t.projects
	d.reasons[0].message == "La branche « feature/x » ne peut pas lancer le pipeline « deploy-prod » ; branches autorisées : main, release/*."
}

test_a_language_without_a_catalogue_falls_back_to_the_default if {
	d := decide(c.with_context(branch_refused, {"language": "de"}))
	d.reasons[0].message == `Branch "feature/x" may not run pipeline "deploy-prod"; allowed: main, release/*.`
}

test_a_language_added_as_data_is_used if {
	german := json.patch(data.messages.en, [
		{"op": "replace", "path": "/messages/branch_not_allowed", "value": "Der Zweig „{branch}“ darf Pipeline „{pipeline}“ nicht ausführen; erlaubt: {allowed}."},
		{"op": "replace", "path": "/decimal_separator", "value": ","},
	])
	d := decide(c.with_context(branch_refused, {"language": "de"})) with data.messages.de as german
	d.reasons[0].message == "Der Zweig „feature/x“ darf Pipeline „deploy-prod“ nicht ausführen; erlaubt: main, release/*."
}

# --- rendering --------------------------------------------------------------------------

test_every_kind_of_parameter if {
	reason := {"code": "test", "params": {
		"text": "as is", "number": 9.8, "count": 3,
		"at": {"time_ns": time.parse_rfc3339_ns("2026-06-10T08:00:00Z")},
		"day": {"term": "sunday"}, "days": {"terms": ["monday", "friday"], "sep": "/"},
		"one": {"message": {"key": "risk_drift.since_decision", "params": {"decision": "d-1"}}},
		"many": {"sep": " + ", "messages": [
			{"key": "risk.finding", "params": {"id": "CVE-1", "cvss": 9.8, "risk": 4.9}},
			{"key": "risk.finding", "params": {"id": "CVE-2", "cvss": 7, "risk": 3.5}},
		]},
	}}
	template := "{text}|{number}|{count}|{at}|{day}|{days}|{one}|{many}"
	rendered := messages.render([reason]) with data.messages.fr.messages.test as template
		with input.context.language as "fr"
		with data.tollgate.config.global_policy as {"timezone": "Europe/Paris"}
	rendered == [{"code": "test", "message": "as is|9,8|3|10/06/2026 10:00:00 (UTC+02:00)|dimanche|lundi/vendredi|depuis la dernière version acceptée (décision d-1)|CVE-1 (CVSS 9,8, risque 4,9) + CVE-2 (CVSS 7, risque 3,5)"}]
}

# What the catalogue cannot say is shown as it is, never dropped: a part
# without a template as its key, a value of no known kind as Rego prints it.
test_unknown_parts_are_shown_as_they_are if {
	reason := {"code": "test", "params": {"part": {"message": {"key": "no.such.part"}}, "flag": true}}
	messages.render([reason]) == [{"code": "test", "message": "no.such.part, true"}] with data.messages.en.messages.test as "{part}, {flag}"
}

test_a_reason_with_its_own_message_is_kept if {
	reason := {"code": "change_board_pending", "message": "The change board meets at 14:00."}
	messages.render([reason]) == [reason] with input.context.language as "fr"
}

test_exception_ids_stay_and_params_go if {
	waived := {"code": "branch_not_allowed", "exception_id": "exc-1", "params": {"branch": "b", "pipeline": "p", "allowed": "main"}}
	messages.render([waived]) == [{"code": "branch_not_allowed", "exception_id": "exc-1", "message": `Branch "b" may not run pipeline "p"; allowed: main.`}]
}

# A code without a template is not dropped: the engine refuses the decision
# with policy_error, naming the key.
test_a_key_without_a_template_is_flagged if {
	messages.render([{"code": "change_board_pending", "params": {}}]) == [{"code": "change_board_pending", "message": "", "missing_template": "change_board_pending"}]
	messages.render([{"code": "cooldown", "key": "cooldown.typo"}]) == [{"code": "cooldown", "message": "", "missing_template": "cooldown.typo"}]
}

test_nothing_to_render_is_returned_as_is if {
	messages.render([]) == []
}

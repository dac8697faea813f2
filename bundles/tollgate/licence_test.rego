# Tests for step 1, the licence (licence.rego).
package tollgate.licence_test

import data.tollgate.licence
import data.tollgate.messages

request := {
	"repository": "org/service-api",
	"branch": "main",
	"pipeline": "deploy-prod",
	"metadata": {"initiator": "github-actions", "run_id": "42", "environment": "production"},
}

base_input := {
	"request": request,
	"context": {
		"now_ns": time.parse_rfc3339_ns("2026-06-10T10:00:00+02:00"),
		"licence": {"status": "valid", "detail": ""},
	},
}

test_valid_licence_has_no_reason if {
	messages.render(licence.reasons) == [] with input as base_input
}

test_expired_licence_gives_licence_expired if {
	messages.render(licence.reasons) == [{
		"code": "licence_expired",
		"message": "The tollgate licence is expired or not yet valid: expired at 2026-01-01T00:00:00Z.",
	}] with input as base_input
		with input.context.licence as {"status": "expired", "detail": "expired at 2026-01-01T00:00:00Z"}
}

test_invalid_licence_gives_licence_invalid if {
	messages.render(licence.reasons) == [{
		"code": "licence_invalid",
		"message": "The tollgate licence is invalid: bad signature.",
	}] with input as base_input
		with input.context.licence as {"status": "invalid", "detail": "bad signature"}
}

test_unknown_status_is_licence_invalid if {
	messages.render(licence.reasons) == [{
		"code": "licence_invalid",
		"message": "The tollgate licence is invalid: revoked by vendor.",
	}] with input as base_input
		with input.context.licence as {"status": "revoked", "detail": "revoked by vendor"}
}

test_missing_licence_report_is_licence_invalid if {
	messages.render(licence.reasons) == [{
		"code": "licence_invalid",
		"message": "The tollgate licence is invalid: the licence could not be checked.",
	}] with input as {"request": request, "context": {"now_ns": 0}}
}

test_missing_context_is_licence_invalid if {
	licence.status == "missing" with input as {"request": request}
	messages.render(licence.reasons) == [{
		"code": "licence_invalid",
		"message": "The tollgate licence is invalid: the licence could not be checked.",
	}] with input as {"request": request}
}

test_status_is_case_sensitive if {
	[r.code | some r in messages.render(licence.reasons)] == ["licence_invalid"] with input as base_input
		with input.context.licence.status as "VALID"
}

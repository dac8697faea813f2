# METADATA
# title: tollgate decision
# description: |
#   The entrypoint, data.tollgate.decision. The steps run in the order of the
#   contract: licence, project resolution, global rules, incident mode, local
#   rules. Every reason that applies is reported, in that order; an invalid
#   licence stops evaluation and is the only reason. A reason an approved
#   exception waives moves to "waived", with the exception's ID; the
#   decision is accepted when no reason stands. A refusal says when time
#   can clear it (clears_at, next_check_at; see the end of this file).
#
#   Input (see README, "The input document"):
#     input.request  the CI payload {repository, branch, pipeline, metadata}
#     input.context  what Go injects: now_ns, licence, cooldown, exceptions,
#                    freezes, incident, baseline
package tollgate

import data.tollgate.exceptions
import data.tollgate.global
import data.tollgate.incident
import data.tollgate.licence
import data.tollgate.local
import data.tollgate.messages
import data.tollgate.resolve
import data.tollgate.risk

decision := object.union(
	{
		"status": status,
		"reasons": reasons,
		"warnings": warnings,
		"waived": waived,
		"suppressed": risk.suppressed,
		"project": resolve.project_name,
		"pipeline": input.request.pipeline,
		"branch": input.request.branch,
		"environment": input.request.metadata.environment,
	},
	annotations,
)

# The usual case comes first in each else chain: OPA evaluates the branches
# in order. The last branch keeps its condition, so that an undefined value
# above (a broken rule) leaves the decision undefined: policy_error.
found := array.concat(
	array.concat(resolve.reasons, global.reasons),
	array.concat(incident.reasons, local.refusals),
) if {
	count(licence.reasons) == 0
} else := licence.reasons if {
	count(licence.reasons) > 0
}

# Without exceptions (the usual case) every reason stands and nothing is
# waived.
reasons := found if {
	object.get(input.context, "exceptions", null) == null
} else := exceptions.standing(found)

# Waived reasons, then the findings the security gates left out for an
# exception.
waived := [] if {
	object.get(input.context, "exceptions", null) == null
} else := array.concat(exceptions.waived(found), local.waived)

# The incident in force, when a refusal can clear (below; {} when
# accepted), and the messages, rendered in the decision's language
# (messages.rego) only when there is something to say: an accepted
# decision without warnings or waived reasons, the usual case, renders
# nothing. (One branch of object.union only: OPA's type checker, merging
# the types of two such branches with a third, writes into the type
# object.union declares, which compilers share.)
annotations := {} if {
	status == "accepted"
	warnings == []
	waived == []
	object.get(input.context, "incident", null) == null
} else := incident_id if {
	status == "accepted"
	warnings == []
	waived == []
} else := object.union(object.union(incident_id, clearance), said)

said := {
	"reasons": messages.render(reasons),
	"warnings": messages.render(warnings),
	"waived": messages.render(waived),
}

incident_id := {"incident_id": incident.active.id} if {
	incident.active
} else := {}

warnings := local.warnings if {
	count(licence.reasons) == 0
} else := [] if {
	count(licence.reasons) > 0
}

status := "accepted" if {
	count(reasons) == 0
} else := "refused"

# --- when a refusal can clear -------------------------------------------------
#
# A refused decision says when time alone can clear it. "clears_at" gives,
# for each standing reason that time can clear (a reason whose rule gives a
# clears_at entry), the earliest instant it can clear as RFC 3339 (UTC), or
# null when its end is unknown. "next_check_at" is there only when every
# standing reason is one of those, so that waiting can get the request
# through: the earliest instant at which all of them together may have
# cleared (see next_check_ns), or null when none of them has a known end.

clearance := {} if {
	count(clears_ns) == 0
} else := {"clears_at": {code: rfc3339(at) | some code, at in clears_ns}, "next_check_at": rfc3339(next_check_ns)} if {
	every reason in reasons {
		reason.code in object.keys(clears_ns)
	}
} else := {"clears_at": {code: rfc3339(at) | some code, at in clears_ns}}

rfc3339(null) := null

rfc3339(ns) := time.format(ns) if {
	ns != null
	ns < 9223372036854775807
} else := null

# The temporal reasons that stand: code -> ns or null.
clears_ns := {reason.code: clears[reason.code] |
	some reason in reasons
	clears := temporal
	reason.code in object.keys(clears)
}

# What the rules say can clear, whether an exception waives it or not.
temporal := object.union_n([global.clears_at, incident.clears_at, local.clears_at])

# The earliest instant at which every temporal reason may have cleared.
# Reasons interact (a window opens inside a freeze; a freeze ends on a
# weekend), so the rules are asked again at the instant the ones standing
# now clear (later), until none stands: a fixed point, reached within a
# few steps in practice. It is a lower bound: no evaluation before it can
# be accepted unless something other than the clock changes (a freeze is
# lifted, an exception approved). Reasons with an unknown end do not move
# it; it is null when every temporal reason standing now has an unknown end.
next_check_ns := null if {
	every at in clears_ns {
		at == null
	}
} else := settled[0] if {
	# The first step is what stands now; seven more at most, and a step
	# after the fixed point costs nothing.
	first := max([at | some at in clears_ns; at != null])
	settled := settle(settle(settle(settle(settle(settle(settle([first, false])))))))
}

# One step towards the fixed point: [t, done] -> [later(t), later(t) == t].
settle(step) := step if {
	step[1]
} else := [t, t == step[0]] if {
	t := later(step[0])
}

# The latest known clear time of the temporal reasons that stand at t, or t
# if there is none (none stands, or none has a known end), or if t is
# beyond the times the rules can evaluate.
later(t) := max(array.concat([t], [at |
	some code, at in standing
	at != null
])) if {
	global.wall(t) # a time the rules can evaluate
	standing := {code: at |
		some code, at in temporal
		not exceptions.waiver({"code": code})
	} with input.context.now_ns as t
} else := t

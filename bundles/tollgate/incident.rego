# METADATA
# title: incident mode (seed 000)
# description: |
#   While an incident is on (input.context.incident, injected by Go:
#   {"id", "reason", "expires_ns"}; it ends at expires_ns whatever the
#   worker does), only pipelines of the types in
#   global_policy.incident.pipeline_types may run (incident_mode), and
#   global_policy.incident.relax_cooldown: true lifts cooldowns. Every
#   decision made during the incident carries its ID.
package tollgate.incident

import data.tollgate.config
import data.tollgate.resolve

active := input.context.incident if {
	input.context.now_ns < input.context.incident.expires_ns
}

allowed_types := object.get(config.global_policy, ["incident", "pipeline_types"], [])

reasons := [] if {
	object.get(input.context, "incident", null) == null
} else := [] if {
	not active
} else := [] if {
	resolve.resolved[2].type in allowed_types
} else := [{
	"code": "incident_mode",
	"params": params,
}]

# The parameters of the incident_mode message (also the Gate view's).
params := {"id": active.id, "reason": active.reason, "until": {"time_ns": active.expires_ns}, "types": types_text}

# When incident_mode can clear: the incident's end (see global.clears_at).
clears_at["incident_mode"] := active.expires_ns if count(reasons) > 0

types_text := concat(", ", allowed_types) if {
	count(allowed_types) > 0
} else := {"term": "none"}

relaxes_cooldown if {
	active
	config.global_policy.incident.relax_cooldown
}

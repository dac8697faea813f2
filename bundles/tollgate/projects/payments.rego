# METADATA
# title: payments, project rules
# description: |
#   An example of a project's own module. Its reasons join the local rules of
#   the payments project (and become warnings if the project is in warn mode).
#   Production deployments of payments must be started by CI, never by hand.
package tollgate.projects.payments

ci_initiators := {"github-actions", "gitlab-ci"}

reasons contains {
	"code": "initiator_not_allowed",
	"params": {"initiators": concat(", ", sort(ci_initiators)), "initiator": initiator},
} if {
	input.request.metadata.environment == "production"
	not initiator in ci_initiators
}

initiator := object.get(input.request.metadata, "initiator", "")

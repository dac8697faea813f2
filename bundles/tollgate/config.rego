# METADATA
# title: configuration
# description: |
#   The bundle's configuration under the names of the contract:
#   data.tollgate.config.global_policy and data.tollgate.config.projects.
#   The files are config/global_policy/data.json and config/projects/data.json
#   in this bundle; OPA loads them at data.config.*, relative to the bundle
#   root, and these rules give them their contract names. Tests replace them
#   with `with data.tollgate.config.projects as {...}`. Missing configuration
#   leaves the decision undefined: tollgate refuses with policy_error.
package tollgate.config

global_policy := data.config.global_policy

projects := data.config.projects

# METADATA
# title: messages in the reader's language
# description: |
#   Rules give each reason, warning and waived reason a code and the named
#   parameters of its message: {"code", "key"?, "params"?}. The message is
#   rendered once, at the end (decision.rego, gate.rego), from the catalogue
#   of the decision's language: data.messages.<language>, the bundle's
#   messages/<language>/data.json:
#     {"time_format": <Go time layout, with an offset>,
#      "decimal_separator": "." | ",",
#      "terms": {word: translation},      (weekdays, "none", ...)
#      "messages": {key: template}}       (key: the code, or code.variant)
#   A template names its parameters in braces: "Branch \"{branch}\" ...".
#   A parameter's value is
#     a string                            as is
#     a number                            with the language's decimal separator
#     {"time_ns": ns}                     in global_policy.timezone, time_format
#     {"term": word}                      the language's terms[word], else word
#     {"terms": [word], "sep": s}         each translated, joined with s
#     {"message": {"key", "params"}}      a template of the catalogue (its params
#                                         are of the kinds above)
#     {"messages": [{"key", "params"}], "sep": s}   each, joined with s
#   A reason that has a "message" already is kept as it is. One whose key has
#   no template gets an empty message and "missing_template": the engine
#   refuses such a decision with policy_error, naming the key.
#
#   The language is input.context.language, which Go chooses (Accept-Language,
#   --lang, the project's or global_policy's "language") and records with the
#   decision; without it, global_policy.language, else "en".
package tollgate.messages

import data.tollgate.config

catalogue := data.messages

language := input.context.language if {
	catalogue[input.context.language]
} else := object.get(config.global_policy, "language", "en")

# The reasons of list with their messages. An empty list (every accepted
# decision without warnings) costs one count.
render(list) := list if {
	count(list) == 0
} else := [rendered(r) | some r in list]

rendered(r) := r if {
	r.message
} else := object.union(object.remove(r, {"key", "params"}), message(r))

message(r) := {"message": text} if {
	text := format(object.get(r, "key", r.code), object.get(r, "params", {}))
} else := {"message": "", "missing_template": object.get(r, "key", r.code)}

# The template of key in the decision's language, its parameters filled in.
format(key, params) := strings.replace_n({sprintf("{%s}", [name]): param(value) | some name, value in params}, template) if {
	template := catalogue[language].messages[key]
}

# Most parameters are strings: they come first.
param(v) := v if {
	is_string(v)
} else := concat(object.get(v, "sep", ", "), [sub(m) | some m in v.messages]) if {
	is_object(v)
	v.messages
} else := sub(v.message) if {
	is_object(v)
	v.message
} else := scalar(v)

# A template inside a message: its parameters are scalars.
sub(m) := strings.replace_n({sprintf("{%s}", [name]): scalar(value) | some name, value in object.get(m, "params", {})}, template) if {
	template := catalogue[language].messages[m.key]
} else := m.key

scalar(v) := v if {
	is_string(v)
} else := replace(sprintf("%v", [v]), ".", object.get(catalogue[language], "decimal_separator", ".")) if {
	is_number(v)
} else := time.format([v.time_ns, object.get(config.global_policy, "timezone", "UTC"), object.get(catalogue[language], "time_format", "2006-01-02T15:04:05Z07:00")]) if {
	is_object(v)
	v.time_ns
} else := term(v.term) if {
	is_object(v)
	v.term
} else := concat(object.get(v, "sep", ", "), [term(t) | some t in v.terms]) if {
	is_object(v)
	v.terms
} else := sprintf("%v", [v])

term(word) := object.get(catalogue[language], ["terms", word], word)

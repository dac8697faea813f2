package main

import (
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/rego"
)

// langUsage is the help of --lang, for check and eval.
const langUsage = "the `LANGUAGE`s of the messages, such as fr or \"fr, en;q=0.5\" (an Accept-Language value); default: the locale (LC_ALL, LC_MESSAGES, LANG), else the policy's default"

// messageLanguages is the Accept-Language value of the reader: --lang (or
// TOLLGATE_LANG) if given, which must be well formed, else the POSIX
// locale the CI job runs in (fr_FR.UTF-8 is fr-FR), else "". A locale that
// names no language (C, POSIX) or cannot be read is no preference: the
// messages are then in the policy's default language, and the decision is
// the same in any language.
func messageLanguages(flag string, lookup func(string) (string, bool)) (string, error) {
	if flag != "" {
		if _, err := rego.ParseAcceptLanguage(flag); err != nil {
			return "", fmt.Errorf("--lang: %v", err)
		}
		return flag, nil
	}
	for _, name := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		value, ok := lookup(name)
		if !ok || value == "" {
			continue
		}
		// language[_territory][.codeset][@modifier]
		tag, _, _ := strings.Cut(value, ".")
		tag, _, _ = strings.Cut(tag, "@")
		tag = strings.ReplaceAll(tag, "_", "-")
		if tag == "C" || tag == "POSIX" {
			return "", nil
		}
		if _, err := rego.ParseAcceptLanguage(tag); err != nil || tag == "" {
			return "", nil
		}
		return tag, nil
	}
	return "", nil
}

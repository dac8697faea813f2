package main

import (
	"strings"
	"testing"
)

func TestMessageLanguages(t *testing.T) {
	for _, tc := range []struct {
		flag string
		env  map[string]string
		want string
	}{
		{"", nil, ""},
		{"fr", map[string]string{"LANG": "en_US.UTF-8"}, "fr"},                          // the flag first
		{"fr-CA, en;q=0.5", nil, "fr-CA, en;q=0.5"},                                     // an Accept-Language list
		{"", map[string]string{"LANG": "fr_FR.UTF-8"}, "fr-FR"},                         // the CI's locale
		{"", map[string]string{"LANG": "fr_FR.UTF-8", "LC_MESSAGES": "de_DE"}, "de-DE"}, // LC_MESSAGES over LANG
		{"", map[string]string{"LC_ALL": "en_GB.UTF-8", "LC_MESSAGES": "de_DE"}, "en-GB"},
		{"", map[string]string{"LANG": "C.UTF-8"}, ""},                        // no language
		{"", map[string]string{"LC_ALL": "POSIX", "LANG": "fr_FR.UTF-8"}, ""}, // LC_ALL wins, and names none
		{"", map[string]string{"LANG": "ca_ES.UTF-8@valencia"}, "ca-ES"},
		{"", map[string]string{"LANG": "not a locale"}, ""}, // unreadable: no preference
	} {
		got, err := messageLanguages(tc.flag, func(name string) (string, bool) { v, ok := tc.env[name]; return v, ok })
		if err != nil || got != tc.want {
			t.Errorf("--lang %q, %v: %q, %v; want %q", tc.flag, tc.env, got, err, tc.want)
		}
	}
	if _, err := messageLanguages("fr;q=beaucoup", nil); err == nil || !strings.Contains(err.Error(), "--lang") {
		t.Errorf("a malformed --lang: %v", err)
	}
}

// saturdayMorning is refused in production (weekend, outside the windows).
const saturdayMorning = "2026-11-21T10:00:00+01:00"

func TestEvalSpeaksTheReadersLanguage(t *testing.T) {
	const french = "Les déploiements vers production ne sont pas autorisés le week-end (nous sommes samedi, fuseau Europe/Paris)."
	const english = "Deployments to production are not allowed on weekends (it is saturday in Europe/Paris)."
	for _, tc := range []struct {
		name string
		inv  invocation
		args []string
		want string
	}{
		{"default", invocation{}, nil, english},
		{"--lang", invocation{}, []string{"--lang", "fr"}, french},
		{"TOLLGATE_LANG", invocation{env: []string{"TOLLGATE_LANG=fr-BE"}}, nil, french},
		{"the locale", invocation{env: []string{"LANG=fr_FR.UTF-8"}}, nil, french},
		{"--lang over the locale", invocation{env: []string{"LANG=fr_FR.UTF-8"}}, []string{"--lang", "en"}, english},
		{"a language the bundle lacks", invocation{}, []string{"--lang", "de, ja"}, english},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.inv.run(t, evalArgs(append([]string{"--at", saturdayMorning}, tc.args...)...)...)
			r.wantCode(t, exitNo)
			d := decision(t, r)
			var messages []string
			for _, reason := range d.Reasons {
				messages = append(messages, reason.Message)
			}
			if !strings.Contains(strings.Join(messages, "\n"), tc.want) {
				t.Fatalf("messages %q, want %q", messages, tc.want)
			}
		})
	}
	r := invocation{}.run(t, evalArgs("--at", saturdayMorning, "--lang", "fr;q=")...)
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "--lang") {
		t.Fatalf("stderr: %s", r.stderr)
	}
}

package rego

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

// seedCooldown is the message of the decision-flow seed's refusal example
// (seeds/003): tollgate's French cooldown message starts with it.
const seedCooldown = "Cooldown actif pour ce pipeline sur cette branche."

// TestSeedAnswersInFrench reproduces the two example answers of the seed,
// in French, through the engine: accepted with no reasons, then refused by
// the cooldown with the seed's sentence.
func TestSeedAnswersInFrench(t *testing.T) {
	p := mustPolicy(t, defaultBundle)
	r := exampleRequest()
	c := mondayContext(t)
	c.Language = p.Language(r, []string{"fr"})
	accepted := p.Evaluate(t.Context(), r, c)
	if accepted.Status != tollgate.Accepted || len(accepted.Reasons) != 0 || accepted.Project != "service-api" || accepted.Pipeline != "deploy-prod" || accepted.Branch != "main" {
		t.Fatalf("accepted example: got %+v", accepted)
	}
	c.Cooldown.LastAcceptedAt = c.Now.Add(-10 * 60e9)
	refused := p.Evaluate(t.Context(), r, c)
	want := seedCooldown + " Pipeline « deploy-prod », branche « main » : dernier déploiement accepté le 23/11/2026 09:50:00 (UTC+01:00), prochain autorisé à partir du 23/11/2026 10:20:00 (UTC+01:00)."
	if refused.Status != tollgate.Refused || len(refused.Reasons) != 1 || refused.Reasons[0].Code != tollgate.CodeCooldown ||
		refused.Reasons[0].Message != want || refused.Project != "service-api" || refused.Pipeline != "deploy-prod" || refused.Branch != "main" {
		t.Fatalf("refused example: got %+v\nwant the message %q", refused, want)
	}
}

func TestLanguageChoice(t *testing.T) {
	dir := bundleCopy(t)
	editFile(t, filepath.Join(dir, "config/projects/data.json"), `"repositories": ["org/payments"`, `"language": "fr", "repositories": ["org/payments"`)
	p := mustPolicy(t, dir)
	service, payments := exampleRequest(), exampleRequest()
	payments.Repository = "org/payments"
	for _, tc := range []struct {
		header string
		r      tollgate.Request
		want   string
	}{
		{"", service, "en"},                                // global_policy's default
		{"fr-CH, fr;q=0.9, en;q=0.8", service, "fr"},       // a regional tag falls back to its language
		{"de, en;q=0.5, fr;q=0.9", service, "fr"},          // by q-value, not by order
		{"fr;q=0, en", service, "en"},                      // q=0: not acceptable
		{"de, ja", service, "en"},                          // none known: the default
		{"*", payments, "fr"},                              // any: the project's default
		{"", payments, "fr"},                               // the project's default
		{"en-GB, fr;q=0.2", payments, "en"},                // the reader's choice over the project's
		{"de, *;q=0.5, fr;q=0.1", payments, "fr"},          // "*" before fr: the project's default
		{"EN-us", service, "en"},                           // tags are not case-sensitive
		{"pt-BR, en-US;q=0.9", payments, "en"},             // the first known
		{"english", service, "en"},                         // x/text's fallback names
		{"i-klingon, fr", service, "fr"},                   // a grandfathered tag it cannot use
		{"fr-Latn-FR-u-nu-arab", service, "fr"},            // extensions
		{"  fr ,  en ;q=0.5 ", service, "fr"},              // white space
		{"en;q=0.5, fr;q=0.50001", service, "fr"},          // weights compared as numbers
		{"fr;q=1.0, en;q=1.0", service, "fr"},              // ties keep the header's order
		{"zh-Hant-TW, en-CA;q=0.7", service, "en"},         // script subtags
		{"es-419, *;q=0.1", service, "en"},                 // numeric regions
		{"de-CH;q=0.9, de;q=0.8, fr;q=0.7", service, "fr"}, // several unknown first
	} {
		langs, err := ParseAcceptLanguage(tc.header)
		if err != nil {
			t.Errorf("ParseAcceptLanguage(%q): %v", tc.header, err)
			continue
		}
		if got := p.Language(tc.r, langs); got != tc.want {
			t.Errorf("Accept-Language %q for %s: language %q, want %q (parsed %v)", tc.header, tc.r.Repository, got, tc.want, langs)
		}
	}
	for _, bad := range []string{"fr;q=high", "fr;q=", "not a tag!", "fr,,en;q"} {
		if _, err := ParseAcceptLanguage(bad); tollgate.ErrorCode(err) != tollgate.EInvalid {
			t.Errorf("ParseAcceptLanguage(%q) = %v, want an EInvalid error", bad, err)
		}
	}
}

// TestCatalogueIsCheckedAtLoad: a catalogue tollgate cannot use makes a bad
// bundle, which never replaces a good one.
func TestCatalogueIsCheckedAtLoad(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"a message in one language only", "messages/fr/data.json", `"policy_error": `, `"change_board": "Le comité se réunit à 14:00.", "policy_error": `,
			"messages/en/data.json: messages.change_board: missing: fr has it"},
		{"a term in one language only", "messages/en/data.json", `"sunday": "sunday",`, ``,
			"messages/en/data.json: terms.sunday: missing: fr has it"},
		{"times without their offset", "messages/fr/data.json", `"02/01/2006 15:04:05 (UTC-07:00)"`, `"02/01/2006 15:04:05"`,
			"messages/fr/data.json: time_format"},
		{"an empty message", "messages/fr/data.json", `"policy_error": "Erreur de politique : {detail}"`, `"policy_error": " "`,
			"messages/fr/data.json: messages.policy_error: empty"},
		{"a default language without a catalogue", "config/global_policy/data.json", `"timezone"`, `"language": "de", "timezone"`,
			`global_policy/data.json: language: "de" has no catalogue`},
		{"a project language without a catalogue", "config/projects/data.json", `"repositories": ["org/payments"`, `"language": "Français", "repositories": ["org/payments"`,
			`projects/data.json: payments.language: "Français" has no catalogue`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := bundleCopy(t)
			editFile(t, filepath.Join(dir, tc.file), tc.old, tc.new)
			_, err := LoadBundle(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadBundle: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("a language directory named like no language", func(t *testing.T) {
		dir := bundleCopy(t)
		copyFile(t, filepath.Join(dir, "messages/fr/data.json"), filepath.Join(dir, "messages/French/data.json"))
		if _, err := LoadBundle(dir); err == nil || !strings.Contains(err.Error(), "not a lower-case language tag") {
			t.Fatalf("LoadBundle: %v", err)
		}
	})
	t.Run("a third language with every key loads", func(t *testing.T) {
		dir := bundleCopy(t)
		copyFile(t, filepath.Join(dir, "messages/en/data.json"), filepath.Join(dir, "messages/en-gb/data.json"))
		p := mustPolicy(t, dir)
		if got := p.Languages(); !slices.Equal(got, []string{"en", "en-gb", "fr"}) {
			t.Fatalf("languages %v", got)
		}
		if got := p.Language(exampleRequest(), []string{"en-GB"}); got != "en-gb" {
			t.Fatalf("en-GB chose %q", got)
		}
	})
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	content, err := os.ReadFile(from)
	if err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, to, string(content))
}

// TestMissingTemplateIsAPolicyError: a reason whose key has no message in
// the catalogue refuses the request, and the policy_error names the key.
func TestMissingTemplateIsAPolicyError(t *testing.T) {
	dir := bundleCopy(t)
	editFile(t, filepath.Join(dir, "projects/payments.rego"), `"code": "initiator_not_allowed",`, `"code": "initiator_not_allowed", "key": "initiator_not_allowed.typo",`)
	p := mustPolicy(t, dir)
	r := exampleRequest()
	r.Repository, r.Metadata.Initiator = "org/payments", "alice"
	d := p.Evaluate(t.Context(), r, mondayContext(t))
	if d.Status != tollgate.Refused || codes(d.Reasons)[0] != tollgate.CodePolicyError ||
		!strings.Contains(d.Reasons[0].Message, `no message for "initiator_not_allowed.typo" in the catalogue`) {
		t.Fatalf("got %+v", d)
	}
}

// TestPolicyErrorInTheDecisionsLanguage: the one message Go writes is
// rendered from the catalogue too; its detail stays the engine's.
func TestPolicyErrorInTheDecisionsLanguage(t *testing.T) {
	p := mustPolicy(t, newBundleDir(t, map[string]string{
		"policy.rego":           "package tollgate\n\ndecision := 1\n",
		"messages/en/data.json": `{"time_format": "2006-01-02T15:04:05Z07:00", "decimal_separator": ".", "messages": {"policy_error": "{detail}"}}`,
		"messages/fr/data.json": `{"time_format": "02/01/2006 15:04:05 (UTC-07:00)", "decimal_separator": ",", "messages": {"policy_error": "Erreur de politique : {detail}"}}`,
	}))
	c := mondayContext(t)
	want := map[string]string{
		"":   "data.tollgate.decision is malformed: want an object, got number",
		"en": "data.tollgate.decision is malformed: want an object, got number",
		"fr": "Erreur de politique : data.tollgate.decision is malformed: want an object, got number",
	}
	for lang, message := range want {
		c.Language = lang
		d := p.Evaluate(context.Background(), exampleRequest(), c)
		if codes(d.Reasons)[0] != tollgate.CodePolicyError || d.Reasons[0].Message != message {
			t.Errorf("language %q: got %+v, want %q", lang, d.Reasons, message)
		}
	}
}

// TestReplayRendersTheRecordedLanguage: a decision made in French is
// recorded with its language, and its replay says the same French text.
func TestReplayRendersTheRecordedLanguage(t *testing.T) {
	f := newReplayFixture(t)
	ctx := WithLanguages(t.Context(), []string{"fr"})
	r := exampleRequest()
	r.Branch = "develop"
	rec, err := f.gate.Evaluate(ctx, r, ScanSource{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Context.Language != "fr" || !strings.HasPrefix(rec.Decision.Reasons[0].Message, "La branche « develop »") {
		t.Fatalf("recorded %q: %+v", rec.Context.Language, rec.Decision.Reasons)
	}
	stored, err := f.store.Decision(t.Context(), rec.Decision.ID)
	if err != nil {
		t.Fatal(err)
	}
	replay, err := ReplayRecord(t.Context(), f.store, stored)
	if err != nil {
		t.Fatal(err)
	}
	if !replay.Identical || replay.Replayed.Reasons[0].Message != rec.Decision.Reasons[0].Message {
		t.Fatalf("replay differs: %+v", replay.Differences)
	}
	// The same record without its language (as an older one) replays in
	// the default language: the language is what makes it the same.
	stored.Context.Language = ""
	if replay, err = ReplayRecord(t.Context(), f.store, stored); err != nil || replay.Identical {
		t.Fatalf("a replay without the language is identical: %v", err)
	}
}

// BenchmarkEvaluateLanguages is BenchmarkEvaluate as the server runs it,
// with the decision's language in the input: accepted (nothing to render),
// and refused for a branch (one message) in English and in French.
func BenchmarkEvaluateLanguages(b *testing.B) {
	p := mustPolicy(b, defaultBundle)
	for _, tc := range []struct {
		name, branch, lang string
		want               tollgate.Status
	}{
		{"accepted", "main", "en", tollgate.Accepted},
		{"refused-en", "develop", "en", tollgate.Refused},
		{"refused-fr", "develop", "fr", tollgate.Refused},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := exampleRequest()
			r.Branch = tc.branch
			c := mondayContext(b)
			c.Language = tc.lang
			ctx := context.Background()
			if d := p.Evaluate(ctx, r, c); d.Status != tc.want || d.Language != tc.lang {
				b.Fatalf("want %s in %s, got %+v", tc.want, tc.lang, d)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Evaluate(ctx, r, c)
			}
		})
	}
}

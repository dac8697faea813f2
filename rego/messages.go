package rego

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/tollgate/tollgate"
)

// Catalogue is the bundle's messages, data.messages: one entry per
// language, from messages/<language>/data.json. The Rego renders them
// (messages.rego); Go validates them at load, chooses the language of each
// decision and renders the one message it writes itself, policy_error's.
type Catalogue map[string]Language

// Language is the catalogue of one language.
type Language struct {
	Name             string            `json:"name"`
	TimeFormat       string            `json:"time_format"`       // a Go time layout, with the offset
	DecimalSeparator string            `json:"decimal_separator"` // of numbers in messages
	Terms            map[string]string `json:"terms"`             // words: weekdays, "none", …
	Messages         map[string]string `json:"messages"`          // templates by key: a code, or code.variant
}

// DefaultLanguage is the language of messages when neither the reader, the
// project nor global_policy.language chooses one.
const DefaultLanguage = "en"

const messagesFile = "messages/%s/data.json"

var languageTag = regexp.MustCompile(`^[a-z]{2,3}(-[a-z0-9]{2,8})*$`)

// parseCatalogue validates data.messages as loaded. Every language must
// say every key and term another says: a code with a message in one
// language and not in another fails the load, rather than a decision.
func parseCatalogue(dir string, doc any) (Catalogue, error) {
	if doc == nil {
		return Catalogue{}, nil // a bundle whose rules write their own messages
	}
	file := joinPath(dir, "messages")
	var c Catalogue
	if err := decodeConfig(file, doc, &c); err != nil {
		return nil, err
	}
	langs := slices.Sorted(maps.Keys(c))
	for _, lang := range langs {
		l := c[lang]
		file := joinPath(dir, fmt.Sprintf(messagesFile, lang))
		bad := func(field, format string, args ...any) error {
			return &ConfigError{File: file, Field: field, Problem: fmt.Sprintf(format, args...)}
		}
		switch {
		case !languageTag.MatchString(lang):
			return nil, bad("", "%q is not a lower-case language tag such as \"fr\" or \"pt-br\": name the directory after the language", lang)
		case !strings.Contains(l.TimeFormat, "07:00") && !strings.Contains(l.TimeFormat, "0700"):
			return nil, bad("time_format", "%q: a Go time layout with the offset (-07:00), such as \"2006-01-02T15:04:05Z07:00\": times in messages say their offset", l.TimeFormat)
		case l.DecimalSeparator == "":
			return nil, bad("decimal_separator", "required: \".\" or \",\"")
		case len(l.Messages) == 0:
			return nil, bad("messages", "required: the templates by reason code")
		}
		for key, text := range l.Messages {
			if strings.TrimSpace(text) == "" {
				return nil, bad("messages."+key, "empty: write the message")
			}
		}
		for _, other := range langs {
			for _, part := range []struct {
				name       string
				mine, them map[string]string
			}{{"messages", l.Messages, c[other].Messages}, {"terms", l.Terms, c[other].Terms}} {
				for _, key := range slices.Sorted(maps.Keys(part.them)) {
					if _, ok := part.mine[key]; !ok {
						return nil, bad(part.name+"."+key, "missing: %s has it (%q); every language must say every key", other, part.them[key])
					}
				}
			}
		}
	}
	return c, nil
}

// checkLanguages checks that the languages the configuration names have a
// catalogue.
func (c *Config) checkLanguages(dir string, cat Catalogue) error {
	has := func(lang string) bool { _, ok := cat[lang]; return ok }
	known := strings.Join(slices.Sorted(maps.Keys(cat)), ", ")
	if lang := c.GlobalPolicy.Language; lang != "" && !has(lang) {
		return &ConfigError{File: joinPath(dir, globalPolicyFile), Field: "language",
			Problem: fmt.Sprintf("%q has no catalogue messages/%s/data.json (the bundle has: %s)", lang, lang, known)}
	}
	if c.GlobalPolicy.Language == "" && len(cat) > 0 && !has(DefaultLanguage) {
		return &ConfigError{File: joinPath(dir, globalPolicyFile), Field: "language",
			Problem: fmt.Sprintf("required: the bundle has no %q catalogue, so name the default language, one of: %s", DefaultLanguage, known)}
	}
	for _, name := range slices.Sorted(maps.Keys(c.languages)) {
		if lang := c.languages[name]; !has(lang) {
			return &ConfigError{File: joinPath(dir, projectsFile), Field: name + ".language",
				Problem: fmt.Sprintf("%q has no catalogue messages/%s/data.json (the bundle has: %s)", lang, lang, known)}
		}
	}
	return nil
}

// Language is the language of the messages of a decision on r for a reader
// who prefers langs, most preferred first: the first the catalogue has
// (a regional tag such as fr-CA falls back to fr; "*" stops the search),
// else the default of r's project ("language" in the registry), else
// global_policy.language, else DefaultLanguage. Empty for a bundle without
// a catalogue.
func (p *Policy) Language(r tollgate.Request, langs []string) string {
	cat := p.bundle.Catalogue
	if len(cat) == 0 {
		return ""
	}
	for _, lang := range langs {
		lang = strings.ToLower(lang)
		if lang == "*" || lang == "mul" {
			break
		}
		if _, ok := cat[lang]; ok {
			return lang
		}
		if base, _, ok := strings.Cut(lang, "-"); ok {
			if _, ok := cat[base]; ok {
				return base
			}
		}
	}
	if name, ok := p.bundle.Config.project(r.Repository); ok {
		if lang := p.bundle.Config.languages[name]; lang != "" {
			return lang
		}
	}
	if lang := p.bundle.Config.GlobalPolicy.Language; lang != "" {
		return lang
	}
	return DefaultLanguage
}

// Languages lists the languages of the bundle's catalogue.
func (p *Policy) Languages() []string { return slices.Sorted(maps.Keys(p.bundle.Catalogue)) }

// ParseAcceptLanguage reads an Accept-Language header: the languages it
// names, most preferred first (q-values honoured, q=0 left out; "*" is
// "mul"). A malformed header is an EInvalid error.
func ParseAcceptLanguage(header string) ([]string, error) {
	tags, _, err := language.ParseAcceptLanguage(header)
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EInvalid, "Accept-Language %q: %v: send language tags with optional q-values, such as \"fr-FR, fr;q=0.9, en;q=0.5\"", header, err)
	}
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = t.String()
	}
	return out, nil
}

type languagesKey struct{}

// WithLanguages has Gate.Evaluate and Gate.Simulate render the decision's
// messages in the first of langs the bundle speaks (see Policy.Language).
func WithLanguages(ctx context.Context, langs []string) context.Context {
	return context.WithValue(ctx, languagesKey{}, langs)
}

// LanguagesFrom is what WithLanguages put in ctx, nil if nothing.
func LanguagesFrom(ctx context.Context) []string {
	langs, _ := ctx.Value(languagesKey{}).([]string)
	return langs
}

// Say is the catalogue's template key in lang (else in DefaultLanguage),
// its {name}s replaced by params: the words tollgate writes itself around
// the decision's messages (a GitHub review's comment). ok is false when
// the catalogue has no such key: the caller keeps its own English.
func (p *Policy) Say(lang, key string, params map[string]string) (text string, ok bool) {
	template, ok := p.bundle.Catalogue[lang].Messages[key]
	if !ok {
		if template, ok = p.bundle.Catalogue[DefaultLanguage].Messages[key]; !ok {
			return "", false
		}
	}
	for name, value := range params {
		template = strings.ReplaceAll(template, "{"+name+"}", value)
	}
	return template, true
}

// FormatTime shows t as the messages of lang show times: in the policy's
// time zone, with the language's time_format (RFC 3339 without one).
func (p *Policy) FormatTime(lang string, t time.Time) string {
	layout := p.bundle.Catalogue[lang].TimeFormat
	if layout == "" {
		layout = time.RFC3339
	}
	if loc, err := time.LoadLocation(p.bundle.Config.GlobalPolicy.Timezone); err == nil {
		t = t.In(loc) // "" is UTC; a bad name failed the load
	}
	return t.Format(layout)
}

// policyErrorMessage is the message of a policy_error in lang: the
// catalogue's template, whose {detail} is what went wrong (in English, as
// the engine says it), or detail alone.
func (b *Bundle) policyErrorMessage(lang, detail string) string {
	template, ok := b.Catalogue[lang].Messages[tollgate.CodePolicyError]
	if !ok || !strings.Contains(template, "{detail}") {
		return detail
	}
	return strings.ReplaceAll(template, "{detail}", detail)
}

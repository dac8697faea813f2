package tollgate

import (
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of what tollgate records, in bytes of UTF-8. A gate request names
// things; it does not carry documents, and a megabyte "branch" would cost
// megabytes of history per decision.
const (
	// MaxIdentifierBytes bounds a name: repository, pipeline, environment,
	// initiator, run ID, project, finding ID, reason code.
	MaxIdentifierBytes = 256
	// MaxBranchBytes bounds a branch name, as most file systems bound a
	// file name (git stores a branch as a file).
	MaxBranchBytes = 255
	// MaxTextBytes bounds free text: a justification, a reason, a comment.
	MaxTextBytes = 4096
)

// CheckIdentifier refuses a name that is too long or holds a character no
// name should: invalid UTF-8, a control character (C0, DEL, C1 such as
// U+0085), a format character (Unicode Cf: bidi overrides such as U+202E,
// zero-width spaces, the BOM), a line or paragraph separator, a space other
// than U+0020, a default-ignorable character (U+3164, variation
// selectors), a private-use character or a noncharacter. These
// characters make one name display as another, in a terminal or in the
// history page (and a NUL cannot even be stored by PostgreSQL). The empty
// string passes: whether a name is required is the caller's rule.
func CheckIdentifier(field, value string) error {
	if len(value) > MaxIdentifierBytes {
		return Errorf(EInvalid, "%s is %d bytes long: at most %d", field, len(value), MaxIdentifierBytes)
	}
	return checkChars(field, value, false)
}

// CheckChars is CheckIdentifier without its length bound, for the names a
// scanner report carries: a package found at a path deep in node_modules
// is longer than a name a person chose, and the report's size is bounded.
func CheckChars(field, value string) error { return checkChars(field, value, false) }

// CheckText is CheckIdentifier for free text, which may span lines and
// tabs: every other control or format character is refused.
func CheckText(field, value string) error {
	if len(value) > MaxTextBytes {
		return Errorf(EInvalid, "%s is %d bytes long: at most %d", field, len(value), MaxTextBytes)
	}
	return checkChars(field, value, true)
}

func checkChars(field, value string, text bool) error {
	for i, r := range value {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(value[i:], "\uFFFD"):
			return Errorf(EInvalid, "%s is not valid UTF-8 (at byte %d)", field, i)
		case text && (r == '\n' || r == '\t' || r == '\r'):
		case unicode.IsControl(r):
			return Errorf(EInvalid, "%s must not contain control characters (found %U at byte %d)", field, r, i)
		case unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp):
			return Errorf(EInvalid, "%s must not contain invisible formatting characters such as bidi overrides (found %U at byte %d)", field, r, i)
		case !text && lookalike(r):
			return Errorf(EInvalid, "%s must not contain blank, invisible or private characters other than the ASCII space (found %U at byte %d)", field, r, i)
		}
	}
	return nil
}

// lookalike reports a character that lets one name pass for another
// although it is not a format character: a space other than U+0020 (a
// no-break space makes "deploy prod" of two different names), a character
// Unicode says to draw as nothing (the Hangul filler U+3164, variation
// selectors), a private-use character or a noncharacter.
func lookalike(r rune) bool {
	return (unicode.Is(unicode.Zs, r) && r != ' ') ||
		unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector,
			unicode.Noncharacter_Code_Point, unicode.Co)
}

// CheckBranch refuses a branch name that git could not create: the rules
// of git check-ref-format --branch (refs/heads/<name> must be a valid ref
// name, not "HEAD", not starting with "-"), and "@" alone, which git reads
// as HEAD. It also applies CheckIdentifier's characters and MaxBranchBytes.
func CheckBranch(field, name string) error {
	if len(name) > MaxBranchBytes {
		return Errorf(EInvalid, "%s is %d bytes long: at most %d", field, len(name), MaxBranchBytes)
	}
	if err := checkChars(field, name, false); err != nil {
		return err
	}
	if problem := gitBranchProblem(name); problem != "" {
		return Errorf(EInvalid, "%s %q is not a branch name git accepts: %s", field, name, problem)
	}
	return nil
}

// gitBranchProblem is why git check-ref-format --branch would refuse name,
// or "" (see git's refs.c, check_refname_component).
func gitBranchProblem(name string) string {
	switch {
	case name == "":
		return "it is empty"
	case name == "@":
		return `"@" alone means HEAD`
	case name == "HEAD":
		return `"HEAD" is not a branch`
	case name[0] == '-':
		return `it starts with "-"`
	case name[0] == '/' || name[len(name)-1] == '/':
		return `it starts or ends with "/"`
	case name[len(name)-1] == '.':
		return `it ends with "."`
	case strings.Contains(name, ".."):
		return `it contains ".."`
	case strings.Contains(name, "@{"):
		return `it contains "@{"`
	}
	if i := strings.IndexFunc(name, func(r rune) bool {
		return r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r)
	}); i >= 0 {
		return "it contains " + quoteByte(name[i]) + `, and git refuses control characters, space and ~ ^ : ? * [ \`
	}
	for c := range strings.SplitSeq(name, "/") {
		switch {
		case c == "":
			return `it contains "//"`
		case c[0] == '.':
			return `a component starts with "."`
		case strings.HasSuffix(c, ".lock"):
			return `a component ends with ".lock"`
		}
	}
	return ""
}

func quoteByte(b byte) string {
	if b < 0x20 || b == 0x7f {
		return "a control character"
	}
	return `"` + string(b) + `"`
}

// The times the policy can reason about: Rego's time built-ins count
// nanoseconds since 1970 in an int64.
var (
	MinEvaluableTime = time.Unix(0, math.MinInt64).UTC() // 1677-09-21T00:12:43.145224192Z
	MaxEvaluableTime = time.Unix(0, math.MaxInt64).UTC() // 2262-04-11T23:47:16.854775807Z
)

// CheckEvaluableTime refuses a time the policy cannot represent: past the
// int64 nanoseconds, a time would wrap around and, for a cooldown, be
// silently ignored.
func CheckEvaluableTime(field string, t time.Time) error {
	if t.Before(MinEvaluableTime) || t.After(MaxEvaluableTime) {
		return Errorf(EInvalid, "%s %s is outside the times the policy can evaluate, %s to %s",
			field, t.Format(time.RFC3339), MinEvaluableTime.Format(time.RFC3339), MaxEvaluableTime.Format(time.RFC3339))
	}
	return nil
}

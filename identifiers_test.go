package tollgate_test

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"unicode"

	"github.com/tollgate/tollgate"
)

// branchCorpus is hand-picked names around each rule of
// git check-ref-format, then random names over an alphabet of the
// characters those rules are about.
func branchCorpus() []string {
	names := []string{
		"main", "release/1.0", "feature/JIRA-12_x", "hotfix/a.b", "x.lock.y", "a{", "a}", "a@b", "@x", "x@", "a-b", "a/-b",
		"é", "日本/ブランチ", "refs/heads/x", "v1.0.0", "a+b", "a=b", "a,b", "a;b", "a!b", "a#b", "a%b", "a'b", `a"b`, "a<b>", "a|b", "a`b", "a$b",
		"HEAD", "head", "-x", "@", "@{u}", "a@{b", "@{-1}", "a..b", "..", ".", "a/./b", "a b", "a\tb", "a\x7fb", "a~1", "a^", "a:b",
		"a?", "a*", "a[0]", `a\b`, ".hidden", "a/.b", "a.lock", "a/b.lock", "a/b.lock/c", "a.lock/b", ".lock", "a/", "/a", "a.", "a/b.",
		"a//b", "a/b/", "", strings.Repeat("a", 255),
	}
	alphabet := []string{"a", "b", ".", ".", "/", "/", "@", "{", "}", "-", "~", "^", ":", "?", "*", "[", `\`, " ", "\t", "lock", ".lock", "é", "HEAD", "0", "\x7f", "\x01"}
	rng := rand.New(rand.NewPCG(15, 3))
	for range 800 {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		names = append(names, b.String())
	}
	return names
}

// TestCheckBranchAgreesWithGit runs the real git check-ref-format --branch
// on every name of the corpus and compares. The one difference is chosen:
// "@" alone, which git accepts as a branch but reads as HEAD elsewhere.
func TestCheckBranchAgreesWithGit(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal("git is needed to check branch names against it:", err)
	}
	dir := t.TempDir() // outside any repository: @{-N} has nothing to expand to
	accepted := 0
	for _, name := range branchCorpus() {
		cmd := exec.Command(git, "check-ref-format", "--branch", name)
		cmd.Dir = dir
		gitOK := cmd.Run() == nil
		err := tollgate.CheckBranch("branch", name)
		if name == "@" {
			gitOK = false
		}
		if gitOK != (err == nil) {
			t.Errorf("branch %q: git accepts it: %v, CheckBranch: %v", name, gitOK, err)
		}
		if gitOK {
			accepted++
		}
	}
	if accepted < 100 {
		t.Fatalf("only %d names of the corpus are valid: the comparison proves little", accepted)
	}
}

// TestCheckBranchBeyondGit: what tollgate refuses although git would
// create it: too long, or holding characters that hide or reorder text.
func TestCheckBranchBeyondGit(t *testing.T) {
	for name, want := range map[string]string{
		strings.Repeat("a", 256):       "branch is 256 bytes long: at most 255",
		strings.Repeat("b", 1<<20):     "branch is 1048576 bytes long",
		"main\u202e":                   "found U+202E",
		"ma\u200bin":                   "found U+200B",
		"\ufeffmain":                   "found U+FEFF",
		"main\u0085":                   "must not contain control characters (found U+0085",
		"release/\u2028x":              "found U+2028",
		"feature/\u2066rtl\u2069":      "found U+2066",
		string([]byte{'m', 0xff, 'n'}): "not valid UTF-8",
	} {
		err := tollgate.CheckBranch("branch", name)
		if err == nil || tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), want) {
			t.Errorf("branch %.40q: got %v, want %q", name, err, want)
		}
	}
}

func TestCheckIdentifier(t *testing.T) {
	for _, ok := range []string{"", "org/service-api", "Déploiement prod", "run 42", "gitlab.com/a/b/c", strings.Repeat("x", 256), "\ufffd"} {
		if err := tollgate.CheckIdentifier("repository", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	// Every control and format character, one by one.
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			continue
		}
		if err := tollgate.CheckIdentifier("pipeline", "deploy"+string(r)); err == nil {
			t.Errorf("%U accepted", r)
		}
	}
	// Characters that make one name look like another without being format
	// characters: these were recorded before ("org/service\u00a0api" beside
	// "org/service api"; U+3164 draws as nothing).
	for _, r := range []rune{0x00a0, 0x2007, 0x3000, 0x3164, 0xffa0, 0x115f, 0x034f, 0xfe0f, 0xe0100, 0xe000, 0xf8ff, 0xfdd0, 0xffff, 0x10ffff} {
		err := tollgate.CheckIdentifier("repository", "org/service"+string(r)+"api")
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("found %U", r)) {
			t.Errorf("%U: %v", r, err)
		}
		if err := tollgate.CheckBranch("branch", "feature/x"+string(r)); err == nil {
			t.Errorf("branch with %U accepted", r)
		}
	}
	if err := tollgate.CheckText("justification", "voir le ticket : INC-1"); err != nil {
		t.Errorf("a no-break space in text: %v", err)
	}
	if err := tollgate.CheckIdentifier("metadata.initiator", strings.Repeat("x", 257)); err == nil || !strings.Contains(err.Error(), "metadata.initiator is 257 bytes long: at most 256") {
		t.Errorf("long initiator: %v", err)
	}
	if err := tollgate.CheckText("justification", "line one\nline two\twith a tab"); err != nil {
		t.Errorf("text with lines: %v", err)
	}
	if err := tollgate.CheckText("justification", "approved\u202e"); err == nil {
		t.Error("bidi override in text accepted")
	}
}

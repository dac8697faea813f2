package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/sqlite"
)

const epssCSV = `#model_version:v2025.03.14,score_date:2025-03-30T12:55:00Z
cve,epss,percentile
CVE-1999-0001,0.01269,0.78654
CVE-2021-44228,0.94358,0.99957
CVE-2024-3094,0.85,0.98
`

func writeEPSS(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "epss_scores-2025-03-30.csv")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runEPSSCommand runs `tollgate epss ARGS…` with the real binary.
func runEPSSCommand(t *testing.T, args ...string) result {
	t.Helper()
	return runTollgate(t, append([]string{"epss"}, args...)...)
}

func TestEPSSImportIntoTheEmbeddedStore(t *testing.T) {
	dataDir := t.TempDir()
	r := runEPSSCommand(t, "import", writeEPSS(t, epssCSV), "--data-dir", dataDir)
	r.wantCode(t, exitOK)
	if !regexp.MustCompile(`^imported 3 scores \(model v2025\.03\.14, scores of 2025-03-30\) in \S+\n$`).MatchString(r.stdout) || r.stderr != "" {
		t.Fatalf("stdout %q\nstderr %q", r.stdout, r.stderr)
	}

	// A second day replaces the first whole.
	r = runEPSSCommand(t, "import", "--data-dir", dataDir, writeEPSS(t, `#model_version:v2025.03.14,score_date:2025-03-31T12:55:00Z
cve,epss,percentile
CVE-2021-44228,0.95,0.99958
CVE-2024-3094,0.86,0.98
CVE-2025-0001,0.01,0.5
`))
	r.wantCode(t, exitOK)

	store, err := sqlite.Open(t.Context(), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	scores, info, err := store.EPSS(t.Context(), []string{"CVE-2021-44228", "cve-1999-0001"})
	if err != nil {
		t.Fatal(err)
	}
	want := tollgate.EPSSScore{CVE: "CVE-2021-44228", EPSS: 0.95, Percentile: 0.99958}
	if len(scores) != 1 || scores["CVE-2021-44228"] != want {
		t.Errorf("scores = %v, want only %v", scores, want)
	}
	if wantDate := time.Date(2025, 3, 31, 12, 55, 0, 0, time.UTC); info.ModelVersion != "v2025.03.14" || !info.ScoreDate.Equal(wantDate) || info.Count != 3 {
		t.Errorf("info = %+v", info)
	}
}

func TestEPSSImportRefusesABadFileAndKeepsTheScores(t *testing.T) {
	dataDir := t.TempDir()
	runEPSSCommand(t, "import", writeEPSS(t, epssCSV), "--data-dir", dataDir).wantCode(t, exitOK)
	for name, content := range map[string]string{
		"no metadata":  "cve,epss,percentile\nCVE-1999-0001,0.1,0.2\n",
		"out of range": "#model_version:v1,score_date:2025-03-31T00:00:00Z\ncve,epss,percentile\nCVE-1999-0001,1.5,0.2\n",
	} {
		r := runEPSSCommand(t, "import", writeEPSS(t, content), "--data-dir", dataDir)
		r.wantCode(t, exitError)
		if r.stdout != "" || !strings.HasPrefix(r.stderr, "tollgate epss import: ") {
			t.Errorf("%s: stdout %q\nstderr %q", name, r.stdout, r.stderr)
		}
	}
	store, err := sqlite.Open(t.Context(), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, info, err := store.EPSS(t.Context(), nil); err != nil || info.Count != 3 {
		t.Errorf("after refused imports: info %+v, err %v; want the first import's 3 scores", info, err)
	}
}

func TestEPSSUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"import"}, {"import", "a.csv", "b.csv"}, {"export"}} {
		r := runEPSSCommand(t, args...)
		r.wantCode(t, exitError)
		if r.stdout != "" || !strings.Contains(r.stderr, "run `tollgate epss") {
			t.Errorf("epss %v: stdout %q\nstderr %q", args, r.stdout, r.stderr)
		}
	}
	r := runEPSSCommand(t, "import", "-h")
	r.wantCode(t, exitOK)
	if !strings.HasPrefix(r.stdout, "usage: tollgate epss import FILE") {
		t.Errorf("epss import -h: stdout %q", r.stdout)
	}
	r = runEPSSCommand(t, "import", filepath.Join(t.TempDir(), "missing.csv.gz"), "--data-dir", t.TempDir())
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("missing file: stderr %q", r.stderr)
	}
}

// A file cut in the middle of a line is refused; one older than the scores
// in use, or with fewer than 95% of their CVEs (cut at a line end), is
// refused unless --force. A refused file changes nothing.
func TestEPSSImportRefusesCutAndOlderFiles(t *testing.T) {
	dataDir := t.TempDir()
	fixture := func(day string) string {
		data, err := os.ReadFile("../../adapters/epss/testdata/epss_scores-" + day + ".csv")
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	day2025, day2024 := fixture("2025-03-30"), fixture("2024-06-01")
	inUse := func(want time.Time, count int) {
		t.Helper()
		store, err := sqlite.Open(t.Context(), dataDir)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		if _, info, err := store.EPSS(t.Context(), nil); err != nil || !info.ScoreDate.Equal(want) || info.Count != count {
			t.Fatalf("in use: %+v, %v; want %s, %d scores", info, err, want, count)
		}
	}
	refused := func(content, want string, args ...string) {
		t.Helper()
		r := runEPSSCommand(t, append([]string{"import", writeEPSS(t, content), "--data-dir", dataDir}, args...)...)
		r.wantCode(t, exitError)
		if r.stdout != "" || !strings.HasPrefix(r.stderr, "tollgate epss import: ") || !strings.Contains(r.stderr, want) {
			t.Fatalf("stdout %q\nstderr %q, want it to say %q", r.stdout, r.stderr, want)
		}
	}
	march30 := time.Date(2025, 3, 30, 12, 55, 0, 0, time.UTC)

	runEPSSCommand(t, "import", writeEPSS(t, day2025), "--data-dir", dataDir).wantCode(t, exitOK)
	inUse(march30, 12)
	refused(strings.TrimSuffix(day2025, "156\n"), "line 14: the file ends in the middle of a line (no newline after the last row): it was cut short")
	refused(strings.TrimSuffix(day2025, "156\n"), "it was cut short", "--force")
	refused(day2025[:strings.Index(day2025, "CVE-2021-44228")], "the EPSS file has 5 scores, fewer than 95% of the 12 in use")
	refused(day2024, "the EPSS file's scores are of 2024-06-01T00:00:00Z, older than those in use (2025-03-30T12:55:00Z)")
	inUse(march30, 12)

	runEPSSCommand(t, "import", writeEPSS(t, day2024), "--force", "--data-dir", dataDir).wantCode(t, exitOK)
	inUse(time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), 3)
}

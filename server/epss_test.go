package server

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

// FIRST-format fixtures of adapters/epss (see the comment there).
func epssFixture(t *testing.T, day string) string {
	t.Helper()
	data, err := os.ReadFile("../adapters/epss/testdata/epss_scores-" + day + ".csv")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestEPSSImportRefusesCutAndOlderFiles: POST /v1/epss refuses a file cut
// in the middle of a line (400), and one older or much shorter than the
// set in use (409) unless ?force=true; a refused file changes nothing.
func TestEPSSImportRefusesCutAndOlderFiles(t *testing.T) {
	f := newFixture(t)
	day2025, day2024 := epssFixture(t, "2025-03-30"), epssFixture(t, "2024-06-01")
	inUse := func(want string, count float64) {
		t.Helper()
		if code, d := f.do(http.MethodGet, "/v1/epss", "", ""); code != http.StatusOK || d["score_date"] != want || d["count"] != count {
			t.Fatalf("GET /v1/epss: %d %v; want score_date %s, count %v", code, d, want, count)
		}
	}
	post := func(query, body string, status int, code, want string) {
		t.Helper()
		got, d := f.do(http.MethodPost, "/v1/epss"+query, "text/csv", body)
		if got != status || (status != http.StatusOK && (d["error"].(map[string]any)["code"] != code || !strings.Contains(errorMessage(d), want))) {
			t.Fatalf("POST /v1/epss%s: %d %v; want %d %s saying %q", query, got, d, status, code, want)
		}
	}

	post("", day2025, http.StatusOK, "", "")
	inUse("2025-03-30T12:55:00Z", 12)

	// Cut in the middle of the last value: "…,0.99" of "…,0.99156".
	post("", strings.TrimSuffix(day2025, "156\n"), http.StatusBadRequest, tollgate.EInvalid,
		"EPSS file line 14: the file ends in the middle of a line (no newline after the last row): it was cut short")
	// Cut at the end of a line: 5 rows of 12.
	post("", day2025[:strings.Index(day2025, "CVE-2021-44228")], http.StatusConflict, tollgate.EConflict,
		"the EPSS file has 5 scores, fewer than 95% of the 12 in use: it may have been cut short")
	// An older day.
	post("", day2024, http.StatusConflict, tollgate.EConflict,
		"the EPSS file's scores are of 2024-06-01T00:00:00Z, older than those in use (2025-03-30T12:55:00Z)")
	// Bad force values are refused before the file is read.
	post("?force=yes", day2024, http.StatusBadRequest, tollgate.EInvalid, `force must be true or false, once; got "yes"`)
	post("?force=true&force=false", day2024, http.StatusBadRequest, tollgate.EInvalid, `the query parameter "force" is given 2 times`)
	post("?forced=true", day2024, http.StatusBadRequest, tollgate.EInvalid, `unknown query parameter "forced"`)
	post("?force=false", day2024, http.StatusConflict, tollgate.EConflict, "older than those in use")
	inUse("2025-03-30T12:55:00Z", 12)

	// Forced, the older day replaces the newer one; the same day again is
	// accepted without force.
	post("?force=true", day2024, http.StatusOK, "", "")
	inUse("2024-06-01T00:00:00Z", 3)
	post("", day2024, http.StatusOK, "", "")
	post("", day2025, http.StatusOK, "", "")
	inUse("2025-03-30T12:55:00Z", 12)
}

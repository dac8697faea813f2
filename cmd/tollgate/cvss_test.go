package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

func TestCVSSPrintsVersionAndBaseScore(t *testing.T) {
	for _, tt := range []struct{ vector, want string }{
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
			"CVSS 4.0  base score 9.3  CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N\n"},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "CVSS 3.1  base score 10.0  CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H\n"},
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS 3.0  base score 9.8  CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\n"},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N",
			"CVSS 4.0  base score 0.0  CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N\n"},
		// Exactly 8.55 on paper, a hair below in floating point: FIRST's
		// calculator says 8.6 (it rounds with an epsilon), go-cvss 8.5.
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:P/VC:H/VI:L/VA:N/SC:H/SI:H/SA:H",
			"CVSS 4.0  base score 8.6  CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:P/VC:H/VI:L/VA:N/SC:H/SI:H/SA:H\n"},
	} {
		r := runTollgate(t, "cvss", tt.vector)
		r.wantCode(t, exitOK)
		if r.stdout != tt.want || r.stderr != "" {
			t.Errorf("cvss %s:\nstdout %q\nwant   %q\nstderr %q", tt.vector, r.stdout, tt.want, r.stderr)
		}
	}
}

func TestCVSSJSONPrintsTheReceipt(t *testing.T) {
	const vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"
	for _, args := range [][]string{{"cvss", "--json", vector}, {"cvss", vector, "--json"}} {
		r := runTollgate(t, args...)
		r.wantCode(t, exitOK)
		var got tollgate.ScoreReceipt
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, r.stdout)
		}
		if want := (tollgate.ScoreReceipt{Vector: vector, Version: "3.1", Score: 6.1}); got != want {
			t.Errorf("%v: %+v, want %+v", args, got, want)
		}
	}
}

func TestCVSSRefusesBadVectors(t *testing.T) {
	for _, tt := range []struct{ vector, want string }{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "CVSS v3.1 vector \"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H\" is not valid: mandatory metric A is missing"},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:J", `is not valid: unknown value "J" for metric SA: want H, L or N`},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/SA:N", "is not valid: metric SA appears twice"},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/XX:N", `is not valid: unknown metric "XX"`},
		{"CVSS:4.0/AC:L/AV:N/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "is not valid: metric AV comes after AC"},
		{"CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", `version "3.2" is not one tollgate scores`},
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P", "CVSS v2"},
		{"9.8", "not a CVSS v3.x or v4.0 vector"},
		{"", "empty"},
	} {
		r := runTollgate(t, "cvss", tt.vector)
		r.wantCode(t, exitError)
		if r.stdout != "" || !strings.HasPrefix(r.stderr, "tollgate cvss: ") || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("cvss %q:\nstdout %q\nstderr %q, want it to say %q", tt.vector, r.stdout, r.stderr, tt.want)
		}
	}
}

func TestCVSSUsage(t *testing.T) {
	r := runTollgate(t, "cvss")
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "want one VECTOR") || !strings.Contains(r.stderr, "tollgate cvss -h") {
		t.Errorf("no vector: %s", r.stderr)
	}
	r = runTollgate(t, "cvss", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "got 2 arguments") {
		t.Errorf("two vectors: %s", r.stderr)
	}
	r = runTollgate(t, "help", "cvss")
	r.wantCode(t, exitOK)
	if !strings.Contains(r.stdout, "usage: tollgate cvss [--json] VECTOR") || !strings.Contains(r.stdout, "TOLLGATE_JSON") {
		t.Errorf("help cvss:\n%s", r.stdout)
	}
}

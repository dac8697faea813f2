package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
)

func runCheck(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "check",
		"check [--server URL] [--token T] [--lang L] [--wait DURATION] [--attestation-out FILE] [--outputs FILE] [--summary FILE] (--repository R --branch B --pipeline P --environment E [--scan-id ID | --scan FILE --scan-format F] [--vex FILE] | --input FILE | < request.json)",
		`The CI client: asks a tollgate server whether this pipeline may run now,
prints the decision and its reasons, and exits 0 if accepted, 1 if refused,
2 if no decision could be had (server unreachable, bad request, 5xx) — a CI
step should treat 2 as a failure too: tollgate fails closed. The request is
built from the flags, or read as JSON from --input or stdin.
--attestation-out saves the decision signed by the server, refused or
accepted, for a later deploy step to check with `+"`tollgate verify-decision`"+`.
With --wait, a request refused only for reasons time can clear (a time
window, a weekend, a freeze, a cooldown, an incident) waits at the gate, up
to that long, as a gate job (POST /v1/jobs), and check prints what it waits
for until the job ends: exit 0 accepted, 1 refused or expired, 2 no answer.
Ctrl-C cancels the job.
In GitHub Actions (GITHUB_ACTIONS=true) and GitLab CI (GITLAB_CI=true),
request flags left empty (and not set by TOLLGATE_<FLAG>) take the job's
own variables: GITHUB_REPOSITORY, GITHUB_HEAD_REF or (on a branch)
GITHUB_REF_NAME, GITHUB_JOB as the pipeline, GITHUB_TRIGGERING_ACTOR,
GITHUB_RUN_ID; CI_PROJECT_PATH, CI_MERGE_REQUEST_SOURCE_BRANCH_NAME or
(not on a tag) CI_COMMIT_REF_NAME, CI_JOB_NAME, CI_ENVIRONMENT_NAME,
GITLAB_USER_LOGIN, CI_PIPELINE_ID. There, the request is built from them
unless --input is given. --outputs appends TOLLGATE_STATUS,
TOLLGATE_DECISION_ID (and TOLLGATE_JOB_ID) as NAME=VALUE lines, the format
of $GITHUB_OUTPUT and of a GitLab dotenv report; --summary appends the
decision as Markdown ($GITHUB_STEP_SUMMARY).`)
	serverURL := f.String("server", "http://127.0.0.1:8181", "the tollgate server's base `URL`")
	token := f.String("token", "", "API `TOKEN`, sent as Authorization: Bearer")
	repository := f.String("repository", "", "the repository, such as org/service-api")
	branch := f.String("branch", "", "the branch")
	pipeline := f.String("pipeline", "", "the pipeline name")
	environment := f.String("environment", "", "the target environment")
	initiator := f.String("initiator", "", "who or what started the run")
	runID := f.String("run-id", "", "the CI run identifier")
	scanID := f.String("scan-id", "", "the `ID` of a scan stored with POST /v1/scans")
	scanPath := f.String("scan", "", "send the scanner's JSON report in `FILE` with the request")
	scanFormat := f.String("scan-format", "trivy", "the report's `FORMAT`: trivy, grype, sarif or cyclonedx")
	vexPath := f.String("vex", "", "send the CycloneDX VEX document in `FILE` with the scan: its not_affected, false_positive and resolved statements take findings out of the security gates")
	inputPath := f.String("input", "", "read the request JSON from `FILE` (- is stdin)")
	timeout := f.Duration("timeout", 30*time.Second, "give up after this `DURATION`")
	asJSON := f.Bool("json", false, "print the decision as JSON")
	wait := f.Duration("wait", 0, "wait at the gate up to this `DURATION` (at most 24h) while the refusal is one time can clear")
	outputsPath := f.String("outputs", "", "append the outcome to `FILE` as NAME=VALUE lines: TOLLGATE_STATUS (accepted, refused, expired, cancelled or error), TOLLGATE_DECISION_ID, TOLLGATE_JOB_ID with --wait ($GITHUB_OUTPUT, a GitLab dotenv report)")
	summaryPath := f.String("summary", "", "append the outcome to `FILE` as Markdown: the status, every reason and warning, the decision's link ($GITHUB_STEP_SUMMARY)")
	lang := f.String("lang", "", langUsage)
	attestationOut := f.String("attestation-out", "", "write the decision's signed attestation to `FILE`, for `tollgate verify-decision` (the server must sign: serve --attestation-signing-key); exit 2 if it gave none")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	server := strings.TrimSuffix(*serverURL, "/")
	languages, err := messageLanguages(*lang, c.lookupEnv)
	if err != nil {
		return f.usageError("%v", err)
	}
	report := func(r checkResult) error {
		if err := appendOutputs(*outputsPath, r); err != nil {
			return err
		}
		return appendSummary(*summaryPath, server, r)
	}
	// fail also reports that no decision could be had: a CI step that reads
	// the outputs sees "error", not an empty status.
	fail := func(format string, args ...any) int {
		if err := report(checkResult{Status: "error", Message: fmt.Sprintf(format, args...)}); err != nil {
			f.fail("%v", err)
		}
		return f.fail(format, args...)
	}

	var body []byte
	ci, ciFields := ciRequest(c.lookupEnv)
	if *inputPath == "" && ci != "" {
		fillFromCI(c.stderr, ci, ciFields, map[string]*string{"repository": repository, "branch": branch,
			"pipeline": pipeline, "environment": environment, "initiator": initiator, "run-id": runID})
	}
	if *repository != "" || *branch != "" || *pipeline != "" || *environment != "" {
		r := tollgate.Request{Repository: *repository, Branch: *branch, Pipeline: *pipeline,
			Metadata: tollgate.Metadata{Initiator: *initiator, RunID: *runID, Environment: *environment}}
		if err := r.Validate(); err != nil {
			return f.usageError("%v (use --repository, --branch, --pipeline and --environment)", err)
		}
		e := struct {
			tollgate.Request
			ScanID string `json:"scan_id,omitempty"`
			Scan   any    `json:"scan,omitempty"`
			VEX    any    `json:"vex,omitempty"`
		}{Request: r, ScanID: *scanID}
		if *scanPath != "" {
			report, err := os.ReadFile(*scanPath)
			if err != nil {
				return fail("--scan: %v", err)
			}
			if !json.Valid(report) {
				return fail("--scan: %s is not JSON: a scanner's JSON report is expected", *scanPath)
			}
			e.Scan = map[string]any{"format": *scanFormat, "report": json.RawMessage(report)}
		}
		if *vexPath != "" {
			if *scanPath == "" && *scanID == "" {
				return f.usageError("--vex applies to a scan: give --scan or --scan-id too")
			}
			doc, err := os.ReadFile(*vexPath)
			if err != nil {
				return fail("--vex: %v", err)
			}
			if !json.Valid(doc) {
				return fail("--vex: %s is not JSON: a CycloneDX VEX document is expected", *vexPath)
			}
			e.VEX = map[string]any{"format": "cyclonedx", "report": json.RawMessage(doc)}
		}
		body, _ = json.Marshal(e)
	} else if *scanID != "" || *scanPath != "" || *vexPath != "" {
		return f.usageError("--scan-id, --scan and --vex go with the request flags; in a JSON request, use its scan_id, scan or vex field")
	} else if body, err = readRequest(c.stdin, *inputPath); err != nil {
		return fail("%v", err)
	}

	if *wait > 0 {
		if *attestationOut != "" {
			return f.usageError("--attestation-out goes with a plain check, not --wait")
		}
		return waitAtTheGate(ctx, c, fail, report, server, *token, languages, body, *wait, *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+"/v1/evaluate", bytes.NewReader(body))
	if err != nil {
		return fail("--server: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	if languages != "" {
		req.Header.Set("Accept-Language", languages)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail("no decision: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail("no decision: read the answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fail("no decision (HTTP %d, %s): %s", resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fail("no decision (HTTP %d): %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var d tollgate.Decision
	if err := json.Unmarshal(raw, &d); err != nil || (d.Status != tollgate.Accepted && d.Status != tollgate.Refused) {
		return fail("no decision: the server answered something that is not a decision: %s", strings.TrimSpace(string(raw)))
	}
	if *asJSON {
		fmt.Fprintf(c.stdout, "%s\n", raw)
	} else {
		printDecision(c.stdout, d)
	}
	if *attestationOut != "" {
		if err := writeAttestation(*attestationOut, raw); err != nil {
			return fail("%v", err)
		}
	}
	if err := report(checkResult{Status: string(d.Status), DecisionID: d.ID, Reasons: d.Reasons, Warnings: d.Warnings}); err != nil {
		return f.fail("%v", err)
	}
	if d.Status != tollgate.Accepted {
		return exitNo
	}
	return exitOK
}

func printDecision(w io.Writer, d tollgate.Decision) {
	fmt.Fprintf(w, "%s: %s/%s on %s to %s (decision %s)\n", d.Status, d.Project, d.Pipeline, d.Branch, d.Environment, d.ID)
	for _, r := range d.Reasons {
		fmt.Fprintf(w, "  reason  %s: %s\n", r.Code, r.Message)
	}
	for _, r := range d.Warnings {
		fmt.Fprintf(w, "  warning %s: %s\n", r.Code, r.Message)
	}
}

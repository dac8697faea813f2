package test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// These tests run the GitHub Action (action.yml) and the GitLab CI/CD
// component (templates/tollgate-check.yml) as their CI systems would: the
// inputs interpolated, each script run by sh with the system's variables,
// against a real server, the release archive served by a local HTTP server.

const ciVersion = "v0.0.0-ci"

// release serves a release of the test binary as `make dist` lays it out:
// VERSION/tollgate_VERSION_OS_ARCH.tar.gz and VERSION/SHA256SUMS. It
// counts the requests.
type release struct {
	url      string
	archive  string // the archive's name
	checksum string // its SHA-256, hex
	requests atomic.Int32
}

func serveRelease(t *testing.T) *release {
	t.Helper()
	binary, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("tollgate_%s_%s_%s", ciVersion, runtime.GOOS, runtime.GOARCH)
	var archive bytes.Buffer
	gz := gzip.NewWriter(&archive)
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{{name + "/", 0o755, nil}, {name + "/tollgate", 0o755, binary}} {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if f.body == nil {
			hdr.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	r := &release{archive: name + ".tar.gz", checksum: fmt.Sprintf("%x", sha256.Sum256(archive.Bytes()))}
	files := map[string][]byte{
		"/" + ciVersion + "/" + r.archive: archive.Bytes(),
		"/" + ciVersion + "/SHA256SUMS":   []byte(r.checksum + "  " + r.archive + "\n"),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		body, ok := files[req.URL.Path]
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// expression is a ${{ … }} (GitHub) or $[[ … ]] (GitLab) interpolation.
var expression = regexp.MustCompile(`\$\{\{\s*([^}]*?)\s*\}\}|\$\[\[\s*([^\]]*?)\s*\]\]`)

// interpolate replaces every expression of s by values[expr], and fails on
// one the test does not know: the CI file uses nothing the test does not.
func interpolate(t *testing.T, s string, values map[string]string) string {
	t.Helper()
	return expression.ReplaceAllStringFunc(s, func(m string) string {
		sub := expression.FindStringSubmatch(m)
		expr := sub[1] + sub[2]
		v, ok := values[expr]
		if !ok {
			t.Fatalf("the CI file uses %q, which the test does not know", m)
		}
		return v
	})
}

// actionFile is what the test reads of action.yml.
type actionFile struct {
	Inputs map[string]struct {
		Required bool    `yaml:"required"`
		Default  *string `yaml:"default"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Value string `yaml:"value"`
	} `yaml:"outputs"`
	Runs struct {
		Using string `yaml:"using"`
		Steps []struct {
			ID    string            `yaml:"id"`
			Name  string            `yaml:"name"`
			Shell string            `yaml:"shell"`
			Env   map[string]string `yaml:"env"`
			Run   string            `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"runs"`
}

// actionRun is the outcome of a run of the action.
type actionRun struct {
	code    int               // the failing step's exit code, 0 if none failed
	outputs map[string]string // the action's outputs
	summary string            // what it appended to the job summary
	log     string
}

// runAction runs action.yml's steps as a runner does, with inputs and the
// GitHub variables github (GITHUB_ACTIONS=true and the runner's files are
// added).
func runAction(t *testing.T, inputs, github map[string]string) actionRun {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var action actionFile
	if err := yaml.Unmarshal(raw, &action); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	if action.Runs.Using != "composite" {
		t.Fatalf("action.yml runs using %q, want composite", action.Runs.Using)
	}
	tmp := t.TempDir()
	values := map[string]string{"runner.temp": tmp}
	for name, in := range action.Inputs {
		v, given := inputs[name]
		switch {
		case given:
		case in.Default != nil:
			v = *in.Default
		case in.Required:
			t.Fatalf("input %s is required", name)
		}
		values["inputs."+name] = v
	}
	for name := range inputs {
		if _, ok := action.Inputs[name]; !ok {
			t.Fatalf("action.yml has no input %q", name)
		}
	}
	files := map[string]string{}
	for _, f := range []string{"GITHUB_ENV", "GITHUB_STEP_SUMMARY"} {
		files[f] = filepath.Join(tmp, f)
		os.WriteFile(files[f], nil, 0o644)
	}
	run := actionRun{outputs: map[string]string{}}
	var log strings.Builder
	for i, step := range action.Runs.Steps {
		output := filepath.Join(tmp, fmt.Sprintf("output-%d", i))
		os.WriteFile(output, nil, 0o644)
		env := cleanEnv("GITHUB_ACTIONS=true", "RUNNER_TEMP="+tmp, "GITHUB_OUTPUT="+output,
			"GITHUB_ENV="+files["GITHUB_ENV"], "GITHUB_STEP_SUMMARY="+files["GITHUB_STEP_SUMMARY"])
		for k, v := range github {
			env = append(env, k+"="+v)
		}
		for k, v := range dotenv(t, files["GITHUB_ENV"]) {
			env = append(env, k+"="+v)
		}
		for k, v := range step.Env {
			env = append(env, k+"="+interpolate(t, v, values))
		}
		if step.Shell != "sh" {
			t.Fatalf("step %q: shell %q, want sh (as on every runner)", step.Name, step.Shell)
		}
		script := filepath.Join(tmp, fmt.Sprintf("step-%d.sh", i))
		os.WriteFile(script, []byte(interpolate(t, step.Run, values)), 0o644)
		cmd := exec.Command("sh", "-e", script) // GitHub's `sh -e {0}`
		cmd.Env, cmd.Dir = env, tmp
		out, err := cmd.CombinedOutput()
		fmt.Fprintf(&log, "--- %s\n%s", step.Name, out)
		if err != nil {
			run.code = cmd.ProcessState.ExitCode()
			if run.code <= 0 {
				t.Fatalf("step %q: %v", step.Name, err)
			}
		}
		if step.ID != "" {
			for k, v := range dotenv(t, output) {
				values["steps."+step.ID+".outputs."+k] = v
			}
		}
		if run.code != 0 {
			break
		}
	}
	for name, o := range action.Outputs {
		if v := expression.FindStringSubmatch(o.Value); v != nil && values[v[1]] != "" {
			run.outputs[name] = values[v[1]]
		}
	}
	summary, _ := os.ReadFile(files["GITHUB_STEP_SUMMARY"])
	run.summary, run.log = string(summary), log.String()
	return run
}

// dotenv reads NAME=VALUE lines.
func dotenv(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		if k, v, ok := strings.Cut(strings.TrimRight(line, "\n"), "="); ok {
			values[k] = v
		}
	}
	return values
}

// githubJob is the variables of a GitHub Actions job of org/service-api
// on branch main.
func githubJob() map[string]string {
	return map[string]string{"GITHUB_REPOSITORY": "org/service-api", "GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main",
		"GITHUB_JOB": "deploy-staging", "GITHUB_RUN_ID": "9001", "GITHUB_ACTOR": "octocat", "GITHUB_TRIGGERING_ACTOR": "octocat"}
}

func TestGitHubAction(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{auth: true})
	rel := serveRelease(t)
	inputs := func(more map[string]string) map[string]string {
		in := map[string]string{"url": s.base, "token": s.token, "environment": envStaging, "version": ciVersion, "release-url": rel.url}
		maps.Copy(in, more)
		return in
	}

	t.Run("accepted", func(t *testing.T) {
		run := runAction(t, inputs(nil), githubJob())
		if run.code != 0 || run.outputs["status"] != "accepted" {
			t.Fatalf("exit %d, outputs %v; want accepted\n%s", run.code, run.outputs, run.log)
		}
		d := s.decisionByID(t, run.outputs["decision-id"])
		if r := d.Request; r.Repository != "org/service-api" || r.Branch != "main" || r.Pipeline != "deploy-staging" ||
			r.Metadata.Environment != envStaging || r.Metadata.RunID != "9001" || r.Metadata.Initiator != "octocat" {
			t.Errorf("the request recorded: %+v; want GitHub's repository, branch, job, run and actor", r)
		}
		if !strings.Contains(run.log, "--run-id 9001 (GITHUB_RUN_ID)") || !strings.Contains(run.log, "--initiator octocat (GITHUB_TRIGGERING_ACTOR)") {
			t.Errorf("check does not say what it took from GitHub:\n%s", run.log)
		}
		want := "### tollgate: accepted\n\nDecision [`" + d.ID + "`](" + s.base + "/ui/decisions/" + d.ID + ")\n"
		if run.summary != want+"\n" {
			t.Errorf("summary %q, want %q", run.summary, want)
		}
	})

	t.Run("refused", func(t *testing.T) {
		run := runAction(t, inputs(map[string]string{"environment": envFrozen}), githubJob())
		if run.code != 1 || run.outputs["status"] != "refused" || run.outputs["decision-id"] == "" {
			t.Fatalf("exit %d, outputs %v; want 1 and refused\n%s", run.code, run.outputs, run.log)
		}
		if !strings.Contains(run.summary, "| reason | `freeze_active` | ") || !strings.Contains(run.summary, "### tollgate: refused") {
			t.Errorf("summary lacks the reason:\n%s", run.summary)
		}
	})

	t.Run("in French", func(t *testing.T) {
		run := runAction(t, inputs(map[string]string{"environment": envFrozen, "lang": "fr"}), githubJob())
		if run.code != 1 || run.outputs["status"] != "refused" || !strings.Contains(run.summary, "| reason | `freeze_active` | Le gel") {
			t.Fatalf("exit %d, outputs %v; want refused in French\n%s\n%s", run.code, run.outputs, run.summary, run.log)
		}
	})

	t.Run("waits at the gate", func(t *testing.T) {
		code, raw := s.postJSON(t, "/v1/freezes", map[string]any{"reason": "maintenance", "environments": []string{envDev}, "ttl": "1h"})
		if code != http.StatusCreated {
			t.Fatalf("freeze: %d %s", code, raw)
		}
		done := make(chan actionRun)
		go func() {
			done <- runAction(t, inputs(map[string]string{"environment": envDev, "wait": "2m", "pipeline": "deploy"}),
				map[string]string{"GITHUB_REPOSITORY": "org/e2e", "GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main", "GITHUB_RUN_ID": "9002"})
		}()
		eventually(t, time.Minute, "the action's job waits for the freeze", func() bool {
			_, raw := s.get(t, "/v1/jobs?repository=org/e2e&state=waiting")
			return len(decode[map[string][]any](t, raw)["jobs"]) == 1
		})
		if code, raw := s.do(t, http.MethodDelete, "/v1/freezes/"+decode[map[string]any](t, raw)["id"].(string), "application/json", []byte(`{}`)); code != http.StatusOK {
			t.Fatalf("lift: %d %s", code, raw)
		}
		run := <-done
		if run.code != 0 || run.outputs["status"] != "accepted" || run.outputs["job-id"] == "" {
			t.Fatalf("exit %d, outputs %v; want accepted after waiting\n%s", run.code, run.outputs, run.log)
		}
		// It was refused by the freeze first (the log may not show it: the
		// lift can come before the action's next look at its job).
		_, raw = s.get(t, "/v1/jobs/"+run.outputs["job-id"])
		if j := decode[map[string]any](t, raw); len(j["decisions"].([]any)) != 2 || j["decisions"].([]any)[1] != run.outputs["decision-id"] {
			t.Errorf("the job %v; want two checks, the last one the decision-id output %s", j, run.outputs["decision-id"])
		}
	})

	t.Run("no decision", func(t *testing.T) {
		run := runAction(t, inputs(map[string]string{"url": "http://" + freePort(t)}), githubJob())
		if run.code != 2 || run.outputs["status"] != "error" || !strings.Contains(run.summary, "No decision: ") {
			t.Fatalf("exit %d, outputs %v, summary %q; want 2 and error", run.code, run.outputs, run.summary)
		}
	})

	t.Run("pinned checksum", func(t *testing.T) {
		before := len(s.allDecisions(t, ""))
		run := runAction(t, inputs(map[string]string{"checksum": strings.Repeat("0", 64)}), githubJob())
		if run.code == 0 || !strings.Contains(run.log, "FAILED") {
			t.Fatalf("an archive that is not the pinned one: exit %d\n%s", run.code, run.log)
		}
		if after := len(s.allDecisions(t, "")); after != before {
			t.Errorf("%d decisions recorded by a run whose install failed", after-before)
		}
		if run := runAction(t, inputs(map[string]string{"checksum": rel.checksum}), githubJob()); run.code != 0 {
			t.Fatalf("the pinned archive: exit %d\n%s", run.code, run.log)
		}
	})

	t.Run("a binary on the runner", func(t *testing.T) {
		n := rel.requests.Load()
		run := runAction(t, inputs(map[string]string{"version": "", "tollgate-path": binPath}), githubJob())
		if run.code != 0 || rel.requests.Load() != n {
			t.Fatalf("exit %d, %d downloads; want 0 and none\n%s", run.code, rel.requests.Load()-n, run.log)
		}
	})
}

// gitlabComponent is what the test reads of templates/tollgate-check.yml.
type gitlabComponent struct {
	Spec struct {
		Inputs map[string]struct {
			Default *string `yaml:"default"`
		} `yaml:"inputs"`
	} `yaml:"spec"`
}

type gitlabJob struct {
	Variables map[string]string `yaml:"variables"`
	Script    []string          `yaml:"script"`
	Artifacts struct {
		Reports struct {
			Dotenv string `yaml:"dotenv"`
		} `yaml:"reports"`
	} `yaml:"artifacts"`
}

// runComponent runs the component's job as a GitLab runner does: the spec's
// inputs interpolated, its variables expanded, its script in one shell,
// with the GitLab variables gitlab. It returns the exit code, the dotenv
// report and the log.
func runComponent(t *testing.T, inputs, gitlab map[string]string) (int, map[string]string, string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "templates", "tollgate-check.yml"))
	if err != nil {
		t.Fatal(err)
	}
	header, body, ok := bytes.Cut(raw, []byte("\n---\n"))
	if !ok {
		t.Fatal("templates/tollgate-check.yml: no spec header before ---")
	}
	var spec gitlabComponent
	if err := yaml.Unmarshal(header, &spec); err != nil {
		t.Fatalf("spec: %v", err)
	}
	values := map[string]string{}
	for name, in := range spec.Spec.Inputs {
		v, given := inputs[name]
		switch {
		case given:
		case in.Default != nil:
			v = *in.Default
		default:
			t.Fatalf("input %s is required", name)
		}
		values["inputs."+name] = v
	}
	var jobs map[string]gitlabJob
	if err := yaml.Unmarshal([]byte(interpolate(t, string(body), values)), &jobs); err != nil {
		t.Fatalf("jobs: %v", err)
	}
	job, ok := jobs["tollgate-check"]
	if !ok {
		t.Fatal("no job tollgate-check")
	}
	dir := t.TempDir()
	predefined := map[string]string{"GITLAB_CI": "true", "CI_PROJECT_DIR": dir}
	maps.Copy(predefined, gitlab)
	env := cleanEnv()
	for k, v := range predefined {
		env = append(env, k+"="+v)
	}
	for _, k := range slices.Sorted(maps.Keys(job.Variables)) {
		env = append(env, k+"="+os.Expand(job.Variables[k], func(name string) string { return predefined[name] }))
	}
	cmd := exec.Command("sh", "-e", "-c", strings.Join(job.Script, "\n"))
	cmd.Env, cmd.Dir = env, dir
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		if code = cmd.ProcessState.ExitCode(); code <= 0 {
			t.Fatalf("script: %v", err)
		}
	}
	report := map[string]string{}
	if path := filepath.Join(dir, job.Artifacts.Reports.Dotenv); job.Artifacts.Reports.Dotenv != "" {
		if _, err := os.Stat(path); err == nil {
			report = dotenv(t, path)
		}
	}
	return code, report, string(out)
}

func TestGitLabComponent(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{auth: true})
	rel := serveRelease(t)
	pipeline := map[string]string{"CI_PROJECT_PATH": "org/service-api", "CI_COMMIT_REF_NAME": "main", "CI_JOB_NAME": "tollgate-check",
		"CI_PIPELINE_ID": "77", "GITLAB_USER_LOGIN": "alice", "TOLLGATE_TOKEN": s.token}
	inputs := map[string]string{"url": s.base, "version": ciVersion, "release-url": rel.url, "environment": envStaging, "pipeline": "deploy-staging"}

	code, report, log := runComponent(t, inputs, pipeline)
	if code != 0 || report["TOLLGATE_STATUS"] != "accepted" {
		t.Fatalf("exit %d, report %v; want accepted\n%s", code, report, log)
	}
	d := s.decisionByID(t, report["TOLLGATE_DECISION_ID"])
	if r := d.Request; r.Repository != "org/service-api" || r.Branch != "main" || r.Pipeline != "deploy-staging" ||
		r.Metadata.RunID != "77" || r.Metadata.Initiator != "alice" {
		t.Errorf("the request recorded: %+v; want GitLab's project, branch, pipeline and user", r)
	}
	for _, want := range []string{"--run-id 77 (CI_PIPELINE_ID)", "--initiator alice (GITLAB_USER_LOGIN)", "--repository org/service-api (CI_PROJECT_PATH)"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}

	// The environment from the job's own CI_ENVIRONMENT_NAME, refused there.
	delete(inputs, "environment")
	frozen := maps.Clone(pipeline)
	frozen["CI_ENVIRONMENT_NAME"] = envFrozen
	if code, report, log := runComponent(t, inputs, frozen); code != 1 || report["TOLLGATE_STATUS"] != "refused" {
		t.Fatalf("exit %d, report %v; want 1 and refused\n%s", code, report, log)
	}
	// The messages in the language the lang input names.
	french := maps.Clone(inputs)
	french["lang"] = "fr"
	if code, _, log := runComponent(t, french, frozen); code != 1 || !strings.Contains(log, "Le gel") {
		t.Fatalf("exit %d; want 1 and the freeze in French\n%s", code, log)
	}

	// On a tag, GitLab names no branch: check asks for one, and asks nothing.
	tagged := maps.Clone(pipeline)
	tagged["CI_COMMIT_TAG"], tagged["CI_COMMIT_REF_NAME"] = "v1.2.3", "v1.2.3"
	before := len(s.allDecisions(t, ""))
	if code, _, log := runComponent(t, map[string]string{"url": s.base, "version": ciVersion, "release-url": rel.url,
		"environment": envStaging, "pipeline": "deploy-staging"}, tagged); code != 2 || !strings.Contains(log, "branch") {
		t.Fatalf("on a tag: exit %d; want 2 asking for the branch\n%s", code, log)
	}
	if after := len(s.allDecisions(t, "")); after != before {
		t.Errorf("%d decisions recorded for a tag", after-before)
	}
}

// The install script is the same in the Action and in the component.
func TestCIInstallScriptsAgree(t *testing.T) {
	script := func(file string) string {
		raw, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(string(raw), "# install: the same script")
		body, _, ok2 := strings.Cut(rest, "# install: end")
		if !ok || !ok2 {
			t.Fatalf("%s: no install script between its markers", file)
		}
		var lines []string
		for line := range strings.Lines(body) {
			lines = append(lines, strings.TrimSpace(line))
		}
		return strings.Join(lines[1:], "\n") // past the marker's own line
	}
	if a, b := script("action.yml"), script("templates/tollgate-check.yml"); a != b {
		t.Errorf("the install scripts differ:\naction.yml:\n%s\ntemplates/tollgate-check.yml:\n%s", a, b)
	}
}

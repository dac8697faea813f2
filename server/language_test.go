package server

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// doIn is fixture.do with an Accept-Language header (none if empty); it
// also gives the answer's Content-Language.
func (f *fixture) doIn(acceptLanguage, method, path, body string) (int, string, map[string]any) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if acceptLanguage != "" {
		req.Header.Set("Accept-Language", acceptLanguage)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		f.t.Fatalf("%s %s: invalid JSON answer %q", method, path, raw)
	}
	return resp.StatusCode, resp.Header.Get("Content-Language"), out
}

func firstMessage(d map[string]any) string {
	reasons, _ := d["reasons"].([]any)
	if len(reasons) == 0 {
		return ""
	}
	return reasons[0].(map[string]any)["message"].(string)
}

var developRequest = strings.Replace(exampleRequest, `"branch":"main"`, `"branch":"develop"`, 1)

const (
	developInEnglish = `Branch "develop" may not run pipeline "deploy-prod"; allowed: main, release/*.`
	developInFrench  = "La branche « develop » ne peut pas lancer le pipeline « deploy-prod » ; branches autorisées : main, release/*."
)

// TestAcceptLanguageOnEvaluate: the reader's language, by q-value, is the
// messages', answered as Content-Language and recorded with the decision.
func TestAcceptLanguageOnEvaluate(t *testing.T) {
	f := newFixture(t)
	if developRequest == exampleRequest {
		t.Fatal("the request was not changed")
	}
	for _, tc := range []struct{ header, lang, message string }{
		{"", "en", developInEnglish},
		{"de;q=0.9, fr-CH;q=0.95, en;q=0.1", "fr", developInFrench},
		{"en-US, fr;q=0.5", "en", developInEnglish},
		{"ja", "en", developInEnglish}, // none it speaks: the default
	} {
		code, lang, d := f.doIn(tc.header, http.MethodPost, "/v1/evaluate", developRequest)
		if code != http.StatusOK || lang != tc.lang || firstMessage(d) != tc.message {
			t.Fatalf("Accept-Language %q: %d, Content-Language %q, %v", tc.header, code, lang, d)
		}
		_, rec := f.do(http.MethodGet, "/v1/decisions/"+d["decision_id"].(string), "", "")
		if rec["context"].(map[string]any)["language"] != tc.lang || firstMessage(rec) != tc.message {
			t.Fatalf("Accept-Language %q: recorded %v", tc.header, rec)
		}
	}
}

// TestMalformedAcceptLanguageIsRejected: a header tollgate cannot read is a
// 400, and nothing is recorded.
func TestMalformedAcceptLanguageIsRejected(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/v1/evaluate", "/v1/simulate"} {
		body := developRequest
		if path == "/v1/simulate" {
			body = `{"input": ` + developRequest + `}`
		}
		code, _, d := f.doIn("fr;q=beaucoup", http.MethodPost, path, body)
		if code != http.StatusBadRequest || !strings.Contains(d["error"].(map[string]any)["message"].(string), "Accept-Language") {
			t.Fatalf("%s: %d %v", path, code, d)
		}
	}
	if n := f.countDecisions(); n != 0 {
		t.Fatalf("%d decisions recorded", n)
	}
}

// TestMalformedAcceptLanguageOnJobsIsRejected: a gate job submitted with a
// header tollgate cannot read is a 400, and no job is created.
func TestMalformedAcceptLanguageOnJobsIsRejected(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) {})
	code, _, d := f.doIn("fr;q=beaucoup", http.MethodPost, "/v1/jobs", jobBodyFor("bad-lang", f.now.Load().Add(time.Hour), ""))
	if code != http.StatusBadRequest || !strings.Contains(d["error"].(map[string]any)["message"].(string), "Accept-Language") {
		t.Fatalf("submit: %d %v", code, d)
	}
	if code, j := f.do(http.MethodGet, "/v1/jobs", "", ""); code != http.StatusOK || len(j["jobs"].([]any)) != 0 {
		t.Fatalf("jobs after the refused submission: %d %v", code, j)
	}
	if n := f.countDecisions(); n != 0 {
		t.Fatalf("%d decisions recorded", n)
	}
}

func TestAcceptLanguageOnSimulate(t *testing.T) {
	f := newFixture(t)
	code, lang, d := f.doIn("fr", http.MethodPost, "/v1/simulate", `{"input": `+developRequest+`}`)
	if code != http.StatusOK || lang != "fr" || firstMessage(d) != developInFrench || d["simulated"] != true {
		t.Fatalf("%d %q %v", code, lang, d)
	}
	// A simulated configuration's default language is the simulation's.
	config := `{"global_policy": {"timezone": "Europe/Paris", "language": "fr"}}`
	code, lang, d = f.doIn("", http.MethodPost, "/v1/simulate", `{"input": `+developRequest+`, "config": `+config+`}`)
	if code != http.StatusOK || lang != "fr" || firstMessage(d) != developInFrench {
		t.Fatalf("simulated default: %d %q %v", code, lang, d)
	}
	config = `{"global_policy": {"timezone": "Europe/Paris", "language": "de"}}`
	if code, _, d = f.doIn("", http.MethodPost, "/v1/simulate", `{"input": `+developRequest+`, "config": `+config+`}`); code != http.StatusBadRequest {
		t.Fatalf("a default language without a catalogue: %d %v", code, d)
	}
}

// TestJobChecksSpeakTheSubmissionsLanguage: a job keeps the language its
// submission asked for; every check's decision is in it.
func TestJobChecksSpeakTheSubmissionsLanguage(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) {})
	body := strings.Replace(jobBodyFor("fr-1", f.now.Load().Add(time.Hour), ""), `"branch":"main"`, `"branch":"develop"`, 1)
	code, _, j := f.doIn("fr-FR, en;q=0.5", http.MethodPost, "/v1/jobs", body)
	if code != http.StatusAccepted || j["language"] != "fr" {
		t.Fatalf("submit: %d %v", code, j)
	}
	done := f.waitJob(j["job_id"].(string), state(tollgate.JobRefused))
	if firstMessage(done) != developInFrench {
		t.Fatalf("job reasons: %v", done["reasons"])
	}
	_, rec := f.do(http.MethodGet, "/v1/decisions/"+done["decisions"].([]any)[0].(string), "", "")
	if rec["context"].(map[string]any)["language"] != "fr" || firstMessage(rec) != developInFrench {
		t.Fatalf("the check's decision: %v", rec)
	}
}

// TestHistoryPageShowsTheDecisionsLanguage: the decision page shows the
// messages as recorded, in their language, and says which.
func TestHistoryPageShowsTheDecisionsLanguage(t *testing.T) {
	f := newFixture(t)
	_, _, d := f.doIn("fr", http.MethodPost, "/v1/evaluate", developRequest)
	p := f.getPage("/ui/decisions/" + d["decision_id"].(string))
	for _, want := range []string{`<dd id="language">fr</dd>`, `<div class="said" lang="fr">`, "<td>" + developInFrench + "</td>"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the decision page lacks %s\n%s", want, p.body)
		}
	}
}

// frenchServiceAPI is the shipped bundle with French the default language
// of service-api's messages.
func frenchServiceAPI(t *testing.T) *rego.Engine {
	t.Helper()
	return shippedBundleEdited(t, filepath.Join("config", "projects", "data.json"), func(raw []byte) []byte {
		edited := strings.Replace(string(raw), `"repositories": ["org/service-api"]`, `"language": "fr", "repositories": ["org/service-api"]`, 1)
		if edited == string(raw) {
			t.Fatal("service-api not found in the registry")
		}
		return []byte(edited)
	})
}

// TestGitHubReviewSpeaksTheDecisionsLanguage: a deployment of a project
// whose default language is French is reviewed in French, the comment's
// own words included.
func TestGitHubReviewSpeaksTheDecisionsLanguage(t *testing.T) {
	f, gh := githubFixtureOn(t, 0, frenchServiceAPI(t))
	f.setNow("2026-11-27T10:00:00+01:00") // Black Friday, a freeze until Monday
	body := deliveryBody(t, gh, "feature/x", "production")
	_, j := f.deliver("deployment_protection_rule", "d-fr", sign(body), body)
	done := f.waitJob(j["job_id"].(string), state(tollgate.JobRefused))
	decision := done["decisions"].([]any)[0].(string)
	r := gh.waitReviews(t, 1)[0]
	for _, want := range []string{
		"tollgate a refusé le déploiement.",
		"Décision " + decision + ": https://gate.example/ui/decisions/" + decision,
		"Raisons :",
		"- branch_not_allowed: La branche « feature/x » ne peut pas lancer le pipeline « deploy-prod »",
		"- freeze_active: Le gel « black-friday » est actif jusqu'au 30/11/2026 00:00:00 (UTC+01:00) : Black Friday.",
	} {
		if !strings.Contains(r["comment"], want) {
			t.Errorf("the review lacks %q:\n%s", want, r["comment"])
		}
	}
}

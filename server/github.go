package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/github"
)

// GitHub configures the GitHub deployment protection rule (POST
// /v1/integrations/github/webhook): GitHub asks, through a webhook signed
// with Secret, whether a deployment may go on; tollgate makes it a gate
// job, and answers GitHub through App when the job ends.
type GitHub struct {
	App    *github.App
	Secret []byte // the webhook secret
	// Wait is how long a deployment waits at the gate before it is
	// rejected (as expired), unless its project's github.wait_hours names
	// its environment; either way at most the jobs' own longest wait
	// (global_policy.jobs.max_wait_hours), which takes its place when
	// shorter.
	Wait time.Duration
	// PublicURL is the server as people reach it: comments link to
	// PublicURL/ui/decisions/{id}. "": no link.
	PublicURL string
	// Attempts and Backoff bound the reviews' delivery: at most Attempts
	// tries, Backoff, then twice as long, … apart; 6 and 2 s by default.
	Attempts int
	Backoff  time.Duration
}

func (g *GitHub) defaults() {
	if g.Attempts <= 0 {
		g.Attempts = 6
	}
	if g.Backoff <= 0 {
		g.Backoff = 2 * time.Second
	}
}

// githubCallback is a job's Callback when GitHub asked for it.
type githubCallback struct {
	GitHub github.Callback `json:"github"`
}

// githubWebhook is POST /v1/integrations/github/webhook. The signature is
// the authentication: a delivery without a valid X-Hub-Signature-256 is
// 401, and nothing is stored. Events other than deployment_protection_rule
// requested are 204. A request is a gate job under the key of its
// delivery (a redelivery finds the job of the first: 200, nothing
// evaluated again); an event that maps to no request is rejected on
// GitHub at once, with what to configure, and answered 202.
func (s *Server) githubWebhook(c echo.Context) error {
	gh := s.cfg.GitHub
	if gh == nil {
		return newError(http.StatusNotFound, tollgate.ENotFound, "the GitHub integration is not enabled on this server (serve --github-app-id)")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.BodyLimit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return newError(http.StatusRequestEntityTooLarge, tollgate.EInvalid, "request body is larger than the limit of "+humanBytes(s.cfg.BodyLimit))
	case err != nil:
		return newError(http.StatusBadRequest, tollgate.EInvalid, "could not read the request body: "+err.Error())
	}
	if err := github.VerifySignature(gh.Secret, body, c.Request().Header.Get(github.SignatureHeader)); err != nil {
		return newError(http.StatusUnauthorized, tollgate.EUnauthorized, err.Error())
	}
	if c.Request().Header.Get(github.EventHeader) != github.EventName {
		return c.NoContent(http.StatusNoContent) // ping, installation, …: nothing to do
	}
	delivery := c.Request().Header.Get(github.DeliveryHeader)
	if delivery == "" {
		return tollgate.Errorf(tollgate.EInvalid, "%s is missing", github.DeliveryHeader)
	}
	if err := tollgate.CheckIdentifier(github.DeliveryHeader, delivery); err != nil {
		return err
	}
	ev, err := github.ParseEvent(body)
	if err != nil {
		return err
	}
	if ev.Action != github.ActionRequested {
		return c.NoContent(http.StatusNoContent)
	}
	cb, err := ev.Callback(delivery)
	if err != nil {
		return err
	}
	if err := gh.App.CheckCallback(cb.URL); err != nil {
		s.cfg.Logger.Warn("GitHub webhook refused: its callback is off the GitHub API", "delivery", delivery, "err", err)
		return tollgate.Errorf(tollgate.EInvalid, "%v", err)
	}
	jobs, err := s.jobs()
	if err != nil {
		return err
	}
	// A redelivery is answered with the job of the first delivery before
	// anything else is asked of GitHub: nothing is decided twice, and a
	// GitHub that fails now cannot turn a waiting deployment into a
	// rejection.
	key := "github-delivery:" + delivery
	found, err := jobs.Store.Jobs(c.Request().Context(), tollgate.JobFilter{IdempotencyKey: key, Limit: 1})
	if err != nil {
		return err
	}
	if len(found) == 1 {
		if err := s.checkServedJobs(c.Request().Context(), found); err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+found[0].ID)
		return c.JSON(http.StatusOK, found[0])
	}
	policy := s.cfg.Engine.Policy()
	config := policy.Bundle().Config
	workflow := ""
	if ev.Repository != nil && config.GitHubWorkflows(ev.Repository.FullName) && ev.RunID() != "" {
		// The project maps workflow files, which the event does not name:
		// the run does.
		if workflow, err = gh.App.WorkflowPath(c.Request().Context(), cb.InstallationID, ev.Repository.FullName, ev.RunID()); err != nil {
			s.cfg.Logger.Warn("could not read a GitHub deployment's workflow run", "delivery", delivery, "err", err)
			problem := fmt.Sprintf("tollgate could not read the workflow run %s to choose the pipeline (%v): re-run the job once GitHub answers, and check the App has the Actions read permission", ev.RunID(), err)
			go s.review(context.WithoutCancel(c.Request().Context()), cb, github.Outcome{State: github.Rejected, Summary: problem})
			return c.JSON(http.StatusAccepted, map[string]string{"state": github.Rejected, "comment": problem})
		}
	}
	req, err := ev.Request(func(repository, environment string) (string, error) {
		return config.GitHubPipeline(repository, environment, workflow)
	})
	var unmappable *github.UnmappableError
	if errors.As(err, &unmappable) {
		s.cfg.Logger.Info("GitHub deployment rejected: it maps to no gate request", "delivery", delivery, "environment", ev.Environment, "problem", unmappable.Problem)
		go s.review(context.WithoutCancel(c.Request().Context()), cb, github.Outcome{
			State: github.Rejected, Summary: "tollgate cannot gate this deployment: " + unmappable.Problem,
		})
		return c.JSON(http.StatusAccepted, map[string]string{"state": github.Rejected, "comment": unmappable.Problem})
	}
	if err != nil {
		return err
	}
	eval, err := json.Marshal(evaluationBody{Request: req})
	if err != nil {
		return err
	}
	callback, err := json.Marshal(githubCallback{GitHub: cb})
	if err != nil {
		return err
	}
	wait := config.GitHubWait(req.Repository, req.Metadata.Environment)
	if wait == 0 {
		wait = gh.Wait
	}
	maxWait, _, _ := jobs.bounds(policy)
	j, created, err := s.enqueue(c.Request().Context(), jobs, req, eval, s.cfg.Now().Add(min(wait, maxWait)), key, callback)
	if err != nil {
		return err
	}
	return answerJob(c, j, created)
}

// ReviewGitHub delivers d, the end of a GitHub deployment's gate job (the
// outbox's built-in sink "github", see tollgate.CallbackSinks): it reviews
// the deployment on GitHub as the App, approved or rejected with every
// reason. retry says whether a failure may pass. The outbox made d in the
// transaction that ended the job, so the review survives a crash, and is
// sent again until GitHub takes it.
func (s *Server) ReviewGitHub(ctx context.Context, d tollgate.Delivery) (retry bool, err error) {
	var subject struct {
		Job tollgate.Job `json:"job"`
	}
	if err := json.Unmarshal(d.Subject, &subject); err != nil {
		return false, fmt.Errorf("the job of delivery %s cannot be read: %w", d.ID, err)
	}
	j := subject.Job
	var cb githubCallback
	if err := json.Unmarshal(j.Callback, &cb); err != nil || cb.GitHub.URL == "" {
		return false, fmt.Errorf("job %s has no GitHub callback tollgate can read", j.ID)
	}
	if s.cfg.GitHub == nil {
		return true, fmt.Errorf("the GitHub integration is off on this server (--github-app-id): job %s waits for a replica that has it", j.ID)
	}
	o := s.jobOutcome(ctx, j)
	if err := s.cfg.GitHub.App.Review(ctx, cb.GitHub.URL, cb.GitHub.InstallationID, cb.GitHub.Environment, o.State, github.Comment(o)); err != nil {
		return github.Retryable(err), err
	}
	s.cfg.Logger.Info("GitHub deployment reviewed", "delivery", cb.GitHub.Delivery, "state", o.State, "decision", o.DecisionID)
	return false, nil
}

// jobOutcome is the review of an ended job: approved if it was accepted,
// rejected otherwise, with every reason of its last decision and every
// reason an exception waived.
func (s *Server) jobOutcome(ctx context.Context, j tollgate.Job) github.Outcome {
	o := github.Outcome{State: github.Rejected, Reasons: j.Reasons, PublicURL: s.cfg.GitHub.PublicURL}
	lang := j.Language
	if len(j.Decisions) > 0 {
		o.DecisionID = j.Decisions[len(j.Decisions)-1]
		// The decision as recorded (the job keeps no waived reasons); if the
		// store cannot say, the job's reasons are the comment's.
		if rec, err := s.cfg.Store.Decision(ctx, o.DecisionID); err == nil {
			o.Reasons, o.Waived, lang = rec.Decision.Reasons, rec.Decision.Waived, rec.Context.Language
		} else {
			s.cfg.Logger.Warn("could not read a job's last decision for its review; the comment lists the job's reasons", "job", j.ID, "decision", o.DecisionID, "err", err)
		}
	}
	// The comment speaks the decision's language, in the words of the
	// active bundle's catalogue (github.* keys); English where it has none.
	p := s.cfg.Engine.Policy()
	say := func(key, english string, params map[string]string) string {
		if text, ok := p.Say(lang, key, params); ok {
			return text
		}
		return english
	}
	o.Words = github.Words{
		Decision: say("github.decision", github.English.Decision, nil),
		Reasons:  say("github.reasons", github.English.Reasons, nil),
		Waived:   say("github.waived", github.English.Waived, nil),
		Cut:      say("github.cut", github.English.Cut, nil),
	}
	switch j.State {
	case tollgate.JobAccepted:
		o.State, o.Summary = github.Approved, say("github.accepted", "tollgate accepted the deployment.", nil)
	case tollgate.JobRefused:
		o.Summary = say("github.refused", "tollgate refused the deployment.", nil)
	case tollgate.JobExpired:
		until := j.WaitUntil.Format(time.RFC3339)
		o.Summary = say("github.expired", fmt.Sprintf("tollgate refused the deployment: it waited at the gate until %s, and was still refused.", until),
			map[string]string{"until": p.FormatTime(lang, j.WaitUntil)})
	case tollgate.JobCancelled:
		o.Summary = say("github.cancelled", fmt.Sprintf("tollgate rejected the deployment: its gate job %s was cancelled.", j.ID), map[string]string{"job": j.ID})
	}
	return o
}

// review sends the outcome of an event that maps to no gate request (no
// job, nothing stored: not in the outbox) to GitHub, trying again while
// the failure may pass, at most Attempts times, from this process.
func (s *Server) review(ctx context.Context, cb github.Callback, o github.Outcome) {
	gh := s.cfg.GitHub
	comment := github.Comment(o)
	wait := gh.Backoff
	for attempt := 1; ; attempt++ {
		err := gh.App.Review(ctx, cb.URL, cb.InstallationID, cb.Environment, o.State, comment)
		if err == nil {
			s.cfg.Logger.Info("GitHub deployment reviewed", "delivery", cb.Delivery, "state", o.State, "decision", o.DecisionID)
			return
		}
		if !github.Retryable(err) || attempt >= gh.Attempts {
			s.cfg.Logger.Error("could not review a GitHub deployment: GitHub rejects it at its own timeout", "delivery", cb.Delivery, "state", o.State, "attempts", attempt, "err", err)
			return
		}
		s.cfg.Logger.Warn("GitHub review failed; trying again", "delivery", cb.Delivery, "attempt", attempt, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}

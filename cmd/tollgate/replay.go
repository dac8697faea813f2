package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

func runReplay(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "replay",
		"replay --decision ID [--data-dir DIR | --database-url URL | --server URL --token T] [--json]",
		`Re-evaluates a recorded decision with the bundle revision it was made with
(kept in the store when the server activated it) and the context it was
recorded with (clock, licence, cooldown, scan, controls), and shows that the
answer is the same. Exit 0 identical, 1 different (the differences in status,
reasons, warnings and waived reasons are printed), 2 could not replay (an
unknown decision, a revision not in the store, a store or server error).

It reads the store directly, with serve's store flags, or asks a server
(GET /v1/decisions/{id}/replay, a token with the read scope) with --server.`)
	decisionID := f.String("decision", "", "the `ID` of the decision to replay (required)")
	sf := addStoreFlags(f)
	api := apiFlags{
		server:  f.String("server", "", "replay on the tollgate server at this base `URL` instead of reading the store"),
		token:   f.String("token", "", "API `TOKEN` of --server, with the read scope"),
		timeout: f.Duration("timeout", 30*time.Second, "with --server, give up after this `DURATION`"),
	}
	asJSON := f.Bool("json", false, "print the replay as JSON")
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	if *decisionID == "" {
		return f.usageError("--decision is required: the ID of a recorded decision (decision_id)")
	}
	var replay rego.Replay
	var err error
	if *api.server != "" {
		replay, err = replayOnServer(ctx, api, *decisionID)
	} else {
		replay, err = replayFromStore(ctx, sf, *decisionID)
	}
	if err != nil {
		return f.fail("%v", err)
	}
	if *asJSON {
		out, _ := json.MarshalIndent(replay, "", "  ")
		fmt.Fprintf(c.stdout, "%s\n", out)
	} else {
		printReplay(c.stdout, replay)
	}
	if !replay.Identical {
		return exitNo
	}
	return exitOK
}

func replayFromStore(ctx context.Context, sf storeFlags, id string) (rego.Replay, error) {
	// A replay only reads: the store is opened read-only, never created.
	store, err := openReader(ctx, *sf.dataDir, *sf.databaseURL)
	if err != nil {
		return rego.Replay{}, err
	}
	rec, err := store.Decision(ctx, id)
	var replay rego.Replay
	if err == nil {
		replay, err = rego.ReplayRecord(ctx, store, rec)
	}
	return replay, errors.Join(err, store.Close())
}

func replayOnServer(ctx context.Context, api apiFlags, id string) (rego.Replay, error) {
	raw, err := api.fetch(ctx, http.MethodGet, "/v1/decisions/"+url.PathEscape(id)+"/replay", nil)
	if err != nil {
		return rego.Replay{}, err
	}
	var replay rego.Replay
	if err := json.Unmarshal(raw, &replay); err != nil || replay.DecisionID == "" {
		return rego.Replay{}, fmt.Errorf("the server's answer is not a replay: %.200s", raw)
	}
	return replay, nil
}

func printReplay(w io.Writer, r rego.Replay) {
	d := r.Recorded
	fmt.Fprintf(w, "decision %s: %s/%s on %s to %s at %s, bundle %s\n", r.DecisionID, d.Project, d.Pipeline, d.Branch,
		d.Environment, d.EvaluatedAt.UTC().Format(time.RFC3339Nano), r.Revision)
	if r.Identical {
		fmt.Fprintf(w, "identical: replayed %s with %s, as recorded\n", r.Replayed.Status, reasonList(r.Replayed.Reasons))
		return
	}
	fmt.Fprintf(w, "DIFFERENT: the replay does not give the recorded decision\n")
	for _, diff := range r.Differences {
		recorded, _ := json.Marshal(diff.Recorded)
		replayed, _ := json.Marshal(diff.Replayed)
		fmt.Fprintf(w, "  %s:\n    recorded %s\n    replayed %s\n", diff.Field, recorded, replayed)
	}
}

// reasonList is "reasons branch_not_allowed, cooldown", or "no reason".
func reasonList(reasons []tollgate.Reason) string {
	if len(reasons) == 0 {
		return "no reason"
	}
	s := "reasons"
	for i, r := range reasons {
		if i > 0 {
			s += ","
		}
		s += " " + r.Code
	}
	return s
}

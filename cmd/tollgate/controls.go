package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// The commands that manage controls through a server's API: exceptions,
// emergency freezes and incidents. Each prints the server's JSON answer.

// apiFlags are the flags of every API command: where the server is and the
// token to show it.
type apiFlags struct {
	server, token *string
	timeout       *time.Duration
}

func addAPIFlags(f *flags) apiFlags {
	return apiFlags{
		server:  f.String("server", "http://127.0.0.1:8181", "the tollgate server's base `URL`"),
		token:   f.String("token", "", "API `TOKEN`, sent as Authorization: Bearer"),
		timeout: f.Duration("timeout", 30*time.Second, "give up after this `DURATION`"),
	}
}

// call sends body (nil for none) as JSON and prints the JSON answer on
// stdout. Any answer but 2xx is an error naming the server's message.
func (a apiFlags) call(ctx context.Context, c *cli, method, path string, body any) error {
	raw, err := a.fetch(ctx, method, path, body)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return fmt.Errorf("the server's answer is not JSON: %q", raw)
	}
	fmt.Fprintln(c.stdout, out.String())
	return nil
}

// fetch sends body (nil for none) as JSON and returns the answer. Any
// answer but 2xx is an error naming the server's message.
func (a apiFlags) fetch(ctx context.Context, method, path string, body any) ([]byte, error) {
	var reader io.Reader
	if body != nil {
		if err := checkUTF8("", body); err != nil {
			return nil, err
		}
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(ctx, *a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(*a.server, "/")+path, reader)
	if err != nil {
		return nil, fmt.Errorf("--server: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if *a.token != "" {
		req.Header.Set("Authorization", "Bearer "+*a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer: %v", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("HTTP %d, %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	return raw, nil
}

// subcommand is one verb of a command group: its synopsis, help and run.
type subcommand struct {
	synopsis, about string
	run             func(ctx context.Context, c *cli, f *flags, args []string) int
}

// runGroup dispatches "tollgate <group> <verb> …" to the verb.
func runGroup(ctx context.Context, c *cli, group string, verbs map[string]subcommand, order []string, args []string) int {
	if len(args) == 0 || verbs[args[0]].run == nil {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintf(c.stdout, "usage: tollgate %s <%s> …\nrun `tollgate %s <verb> -h` for each one's usage\n", group, strings.Join(order, "|"), group)
			return exitOK
		}
		fmt.Fprintf(c.stderr, "tollgate %s: want one of: %s\n", group, strings.Join(order, ", "))
		return exitError
	}
	v := verbs[args[0]]
	f := newFlags(c, group+" "+args[0], group+" "+args[0]+" "+v.synopsis, v.about)
	return v.run(ctx, c, f, args[1:])
}

// idVerb is a verb that acts on one control by ID, with an optional
// comment: approve, reject, revoke, lift, end.
func idVerb(about, method, pathFormat string) subcommand {
	return subcommand{
		synopsis: "ID [--comment TEXT] [--server URL] [--token T]",
		about:    about,
		run: func(ctx context.Context, c *cli, f *flags, args []string) int {
			api := addAPIFlags(f)
			comment := f.String("comment", "", "why, recorded in the control's history")
			positional, err := f.parse(args)
			if err != nil {
				return exitCode(err)
			}
			if len(positional) != 1 {
				return f.usageError("want one control ID")
			}
			if err := api.call(ctx, c, method, fmt.Sprintf(pathFormat, url.PathEscape(positional[0])), map[string]string{"comment": *comment}); err != nil {
				return f.fail("%v", err)
			}
			return exitOK
		},
	}
}

// listVerb lists controls with the query filters named.
func listVerb(about, path string, filters ...string) subcommand {
	return subcommand{
		synopsis: "[--" + strings.Join(filters, " V] [--") + " V] [--server URL] [--token T]",
		about:    about,
		run: func(ctx context.Context, c *cli, f *flags, args []string) int {
			api := addAPIFlags(f)
			values := map[string]*string{}
			for _, name := range filters {
				values[name] = f.String(name, "", "only the controls with this "+name)
			}
			if code, ok := f.parseNoArgs(args); !ok {
				return code
			}
			q := url.Values{}
			for name, v := range values {
				if *v != "" {
					q.Set(name, *v)
				}
			}
			p := path
			if len(q) > 0 {
				p += "?" + q.Encode()
			}
			if err := api.call(ctx, c, http.MethodGet, p, nil); err != nil {
				return f.fail("%v", err)
			}
			return exitOK
		},
	}
}

// exceptionVerb asks for an exception (or breaks the glass): the flags are
// the fields of POST /v1/exceptions.
func exceptionVerb(about, path string) subcommand {
	return subcommand{
		synopsis: "--project P --code C --justification TEXT (--expires RFC3339 | --ttl DURATION) [--pipeline P] [--environment E] [--branch GLOB] [--finding-id ID] [--server URL] [--token T]",
		about:    about,
		run: func(ctx context.Context, c *cli, f *flags, args []string) int {
			api := addAPIFlags(f)
			body := map[string]*string{}
			for _, name := range []string{"project", "code", "justification", "pipeline", "environment", "branch", "finding-id"} {
				body[name] = f.String(name, "", "the exception's "+name)
			}
			expires := f.String("expires", "", "when it ends, RFC 3339")
			ttl := f.Duration("ttl", 0, "or how long it lasts from now, such as 24h")
			if code, ok := f.parseNoArgs(args); !ok {
				return code
			}
			out := map[string]string{}
			for name, v := range body {
				if *v != "" {
					out[strings.ReplaceAll(name, "-", "_")] = *v
				}
			}
			switch {
			case *expires != "" && *ttl != 0:
				return f.usageError("give --expires or --ttl, not both")
			case *ttl != 0:
				out["expires_at"] = c.now().Add(*ttl).UTC().Format(time.RFC3339)
			case *expires != "":
				out["expires_at"] = *expires
			}
			if err := api.call(ctx, c, http.MethodPost, path, out); err != nil {
				return f.fail("%v", err)
			}
			return exitOK
		},
	}
}

func runException(ctx context.Context, c *cli, args []string) int {
	return runGroup(ctx, c, "exception", map[string]subcommand{
		"request": exceptionVerb(`Asks for an exception: an approved exception waives a reason code (or one
finding of a security gate) for its scope until it expires. Someone else, with
the approve scope, must approve it (two people for production when the global
policy says so).`, "/v1/exceptions"),
		"break-glass": exceptionVerb(`Lets one pipeline (--pipeline) through a freeze, a window or a weekend
(--code freeze_active|time_window_violation|weekend_violation) for a short
time, at once: needs the approve scope. Recorded like every exception.`, "/v1/exceptions/break-glass"),
		"list": listVerb("Lists exceptions, newest first.", "/v1/exceptions", "state", "project", "code"),
		"get": {synopsis: "ID [--server URL] [--token T]", about: "Prints one exception with its history.",
			run: func(ctx context.Context, c *cli, f *flags, args []string) int {
				api := addAPIFlags(f)
				positional, err := f.parse(args)
				if err != nil {
					return exitCode(err)
				}
				if len(positional) != 1 {
					return f.usageError("want one exception ID")
				}
				if err := api.call(ctx, c, http.MethodGet, "/v1/exceptions/"+url.PathEscape(positional[0]), nil); err != nil {
					return f.fail("%v", err)
				}
				return exitOK
			}},
		"approve": idVerb("Approves an exception someone else asked for.", http.MethodPost, "/v1/exceptions/%s/approve"),
		"reject":  idVerb("Rejects (or, for its requester, withdraws) a requested exception.", http.MethodPost, "/v1/exceptions/%s/reject"),
		"revoke":  idVerb("Ends an approved exception before its expiry.", http.MethodPost, "/v1/exceptions/%s/revoke"),
	}, []string{"request", "break-glass", "list", "get", "approve", "reject", "revoke"}, args)
}

// ttlVerb starts a freeze or an incident: a reason and a time to live.
func ttlVerb(about, path string, withEnvironments bool) subcommand {
	synopsis := "--reason TEXT --ttl DURATION [--server URL] [--token T]"
	if withEnvironments {
		synopsis = "--reason TEXT --ttl DURATION [--environments a,b] [--server URL] [--token T]"
	}
	return subcommand{synopsis: synopsis, about: about,
		run: func(ctx context.Context, c *cli, f *flags, args []string) int {
			api := addAPIFlags(f)
			reason := f.String("reason", "", "why: shown in every decision it affects")
			ttl := f.Duration("ttl", 0, "how long until it ends by itself, such as 2h")
			var environments *string
			if withEnvironments {
				environments = f.String("environments", "", "comma-separated environments (default: every one)")
			}
			if code, ok := f.parseNoArgs(args); !ok {
				return code
			}
			body := map[string]any{"reason": *reason, "ttl": ttl.String()}
			if environments != nil && *environments != "" {
				body["environments"] = strings.Split(*environments, ",")
			}
			if err := api.call(ctx, c, http.MethodPost, path, body); err != nil {
				return f.fail("%v", err)
			}
			return exitOK
		}}
}

func runFreeze(ctx context.Context, c *cli, args []string) int {
	return runGroup(ctx, c, "freeze", map[string]subcommand{
		"create": ttlVerb("Freezes deployments at once (admin scope), until --ttl or a lift.", "/v1/freezes", true),
		"lift":   idVerb("Lifts an emergency freeze before its expiry (admin scope).", http.MethodDelete, "/v1/freezes/%s"),
		"list":   listVerb("Lists emergency freezes, newest first.", "/v1/freezes", "state"),
	}, []string{"create", "lift", "list"}, args)
}

func runIncident(ctx context.Context, c *cli, args []string) int {
	return runGroup(ctx, c, "incident", map[string]subcommand{
		"start": ttlVerb(`Turns incident mode on (admin scope): only the pipeline types of
global_policy.incident may run until --ttl or an end.`, "/v1/incidents", false),
		"end":  idVerb("Ends incident mode before its expiry (admin scope).", http.MethodDelete, "/v1/incidents/%s"),
		"list": listVerb("Lists incidents, newest first.", "/v1/incidents", "state"),
	}, []string{"start", "end", "list"}, args)
}

// checkUTF8 refuses a body built from flags whose strings are not valid
// UTF-8: json.Marshal would replace the bad bytes with U+FFFD, and the
// server would record something else than what was typed.
func checkUTF8(name string, v any) error {
	switch v := v.(type) {
	case string:
		if !utf8.ValidString(v) {
			return fmt.Errorf("--%s is not valid UTF-8", strings.ReplaceAll(name, "_", "-"))
		}
	case []string:
		for _, s := range v {
			if err := checkUTF8(name, s); err != nil {
				return err
			}
		}
	case map[string]string:
		for k, s := range v {
			if err := checkUTF8(k, s); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, s := range v {
			if err := checkUTF8(k, s); err != nil {
				return err
			}
		}
	}
	return nil
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/server"
)

func runToken(ctx context.Context, c *cli, args []string) int {
	sub := ""
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "create":
		return runTokenCreate(ctx, c, args)
	case "list":
		return runTokenList(ctx, c, args)
	case "revoke":
		return runTokenRevoke(ctx, c, args)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, tokenUsage)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "tollgate token: want a subcommand: create, list or revoke\n%s", tokenUsage)
	return exitError
}

const tokenUsage = `usage: tollgate token create --name NAME --scopes SCOPE[,SCOPE…] [--expires RFC3339 | --ttl DURATION]
       tollgate token list [--revoked] [--json]
       tollgate token revoke NAME
each with the store flags of serve: [--data-dir DIR | --database-url URL]

API tokens: an identity name and scopes (evaluate, simulate, read, approve,
admin). Run "tollgate token <subcommand> -h" for the flags of each.
`

// storeFlags are serve's store flags, which every token subcommand takes.
type storeFlags struct{ dataDir, databaseURL *string }

func addStoreFlags(f *flags) storeFlags {
	return storeFlags{
		dataDir:     f.String("data-dir", defaultDataDir, "the embedded store's `DIR` (not used with --database-url)"),
		databaseURL: f.String("database-url", "", "PostgreSQL `URL` instead of the embedded store"),
	}
}

func (s storeFlags) open(ctx context.Context) (commandStore, error) {
	return openCommandStore(ctx, *s.dataDir, *s.databaseURL)
}

func runTokenCreate(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "token create",
		"token create --name NAME --scopes SCOPE[,SCOPE…] [--expires RFC3339 | --ttl DURATION] [--data-dir DIR | --database-url URL]",
		`Creates an API token and prints it on stdout, alone on its line. It is shown
this once: the store keeps only its hash. Scopes: evaluate (POST /v1/evaluate,
/v1/scans), simulate (POST /v1/simulate), read (history, scans, bundle status),
approve (exceptions), admin (tokens, EPSS import). A name is unique among
tokens not revoked; it is the identity decisions record.`)
	name := f.String("name", "", "the token's identity `NAME` (letters, digits, '.', '_', '-')")
	scopes := f.String("scopes", "", "comma-separated `SCOPES`: evaluate, simulate, read, approve, admin")
	expires := f.String("expires", "", "the token stops working at this `TIME` (RFC 3339)")
	ttl := f.Duration("ttl", 0, "the token stops working this `DURATION` from now, such as 720h")
	asJSON := f.Bool("json", false, "print the token and its description as JSON")
	store := addStoreFlags(f)
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	if *name == "" || *scopes == "" {
		return f.usageError("--name and --scopes are required")
	}
	parsed, err := tollgate.ParseScopes(*scopes)
	if err != nil {
		return f.usageError("--scopes: %v", err)
	}
	now := c.now()
	var expiresAt time.Time
	switch {
	case *expires != "" && *ttl != 0:
		return f.usageError("give --expires or --ttl, not both")
	case *expires != "":
		if expiresAt, err = parseTime("expires", *expires); err != nil {
			return f.usageError("%v", err)
		}
	case *ttl < 0:
		return f.usageError("--ttl must be positive")
	case *ttl > 0:
		expiresAt = now.Add(*ttl)
	}
	tok, bearer, hash, err := tollgate.NewToken(rand.Reader, *name, parsed, now, expiresAt)
	if err != nil {
		return f.usageError("%v", err)
	}
	s, err := store.open(ctx)
	if err != nil {
		return f.fail("%v", err)
	}
	err = s.CreateToken(ctx, tok, hash)
	if closeErr := s.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return f.fail("%v", err)
	}
	if *asJSON {
		return printJSON(c, struct {
			tollgate.Token
			Bearer string `json:"token"`
		}{tok, bearer})
	}
	fmt.Fprintln(c.stdout, bearer)
	expiry := "never expires"
	if !tok.ExpiresAt.IsZero() {
		expiry = "expires " + tok.ExpiresAt.Format(time.RFC3339)
	}
	fmt.Fprintf(c.stderr, "created token %q (id %s, scopes %s, %s). It is shown only this once: keep it now.\n",
		tok.Name, tok.ID, tollgate.FormatScopes(tok.Scopes, ","), expiry)
	return exitOK
}

func runTokenList(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "token list", "token list [--revoked] [--json] [--data-dir DIR | --database-url URL]",
		`Lists the API tokens, by name: never their secrets, which are not stored.`)
	withRevoked := f.Bool("revoked", false, "list revoked tokens too")
	asJSON := f.Bool("json", false, "print JSON")
	store := addStoreFlags(f)
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	s, err := openReader(ctx, *store.dataDir, *store.databaseURL)
	if err != nil {
		return f.fail("%v", err)
	}
	tokens, err := s.Tokens(ctx, *withRevoked)
	if closeErr := s.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return f.fail("%v", err)
	}
	now := c.now()
	if *asJSON {
		type item struct {
			tollgate.Token
			State string `json:"state"`
		}
		items := make([]item, len(tokens))
		for i, t := range tokens {
			items[i] = item{t, t.State(now)}
		}
		return printJSON(c, map[string]any{"tokens": items})
	}
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tID\tSCOPES\tSTATE\tCREATED\tEXPIRES")
	for _, t := range tokens {
		expires := "never"
		if !t.ExpiresAt.IsZero() {
			expires = t.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.ID, tollgate.FormatScopes(t.Scopes, ","),
			t.State(now), t.CreatedAt.Format(time.RFC3339), expires)
	}
	w.Flush()
	return exitOK
}

func runTokenRevoke(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "token revoke", "token revoke NAME [--data-dir DIR | --database-url URL]",
		fmt.Sprintf(`Revokes the token named NAME. A server using the same store stops accepting
it within its token cache TTL (serve --token-cache-ttl, %s by default); a
revocation through DELETE /v1/tokens/NAME applies at once on the server that
receives it.`, server.DefaultTokenCacheTTL))
	store := addStoreFlags(f)
	positional, err := f.parse(args)
	if err != nil {
		return exitCode(err)
	}
	if len(positional) != 1 {
		return f.usageError("want one token NAME")
	}
	s, err := store.open(ctx)
	if err != nil {
		return f.fail("%v", err)
	}
	tok, err := s.RevokeToken(ctx, positional[0], c.now())
	if closeErr := s.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return f.fail("%v", err)
	}
	fmt.Fprintf(c.stdout, "revoked token %q (id %s)\n", tok.Name, tok.ID)
	return exitOK
}

func printJSON(c *cli, v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		c.errorf("token", "%v", err)
		return exitError
	}
	return exitOK
}

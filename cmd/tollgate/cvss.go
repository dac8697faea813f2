package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tollgate/tollgate/adapters/cvss"
)

func runCVSS(_ context.Context, c *cli, args []string) int {
	f := newFlags(c, "cvss", "cvss [--json] VECTOR",
		`Prints the CVSS version and base score of a CVSS v3.0, v3.1 or v4.0 vector,
computed as the risk gates compute it, for instance:

  tollgate cvss CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N
  CVSS 4.0  base score 9.3  CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N

A v4.0 vector that also sets Threat or Environmental metrics gets the score
the specification defines for them (CVSS-BT, -BE or -BTE). CVSS v2 vectors
are refused. Exit 0 with the score, 2 when the vector is not valid.`)
	asJSON := f.Bool("json", false, `print the score receipt as JSON: {"vector","version","score"}`)
	vectors, err := f.parse(args)
	if err != nil {
		return exitCode(err)
	}
	if len(vectors) != 1 {
		return f.usageError("want one VECTOR, such as CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H; got %d arguments", len(vectors))
	}
	receipt, err := cvss.Score(vectors[0])
	if err != nil {
		return f.fail("%v", err)
	}
	if *asJSON {
		out, err := json.MarshalIndent(receipt, "", "  ")
		if err != nil {
			return f.fail("encode: %v", err)
		}
		fmt.Fprintf(c.stdout, "%s\n", out)
		return exitOK
	}
	fmt.Fprintf(c.stdout, "CVSS %s  base score %.1f  %s\n", receipt.Version, receipt.Score, receipt.Vector)
	return exitOK
}

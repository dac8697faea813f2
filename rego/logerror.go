package rego

import (
	"errors"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// logLine is err as one line a person reads in the log. OPA's parse and
// compile errors end with the source line and a caret on lines of their
// own, which a log line shows as "\n\t" escapes in one long string; here
// each is file:line: code: message, and the errors follow one another
// separated by "; ". The error itself (GET /v1/bundles) keeps them whole.
func logLine(err error) string {
	text := err.Error()
	for _, e := range opaErrors(err) {
		if e.Details != nil {
			short := *e
			short.Details = nil
			text = strings.Replace(text, e.Error(), short.Error(), 1)
		}
	}
	var out strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if out.Len() > 0 {
			if strings.HasSuffix(out.String(), ":") {
				out.WriteString(" ")
			} else {
				out.WriteString("; ")
			}
		}
		out.WriteString(line)
	}
	return out.String()
}

// opaErrors are the located errors of OPA's loader, parser and compiler
// in err's chain.
func opaErrors(err error) []*ast.Error {
	var loaded loader.Errors
	var compiled ast.Errors
	var one *ast.Error
	switch {
	case errors.As(err, &loaded):
		var out []*ast.Error
		for _, e := range loaded {
			out = append(out, opaErrors(e)...)
		}
		return out
	case errors.As(err, &compiled):
		return compiled
	case errors.As(err, &one):
		return []*ast.Error{one}
	}
	return nil
}

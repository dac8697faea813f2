package tollgate

import (
	"errors"
	"fmt"
)

// Error codes, stable across the API and the CLI.
const (
	EInvalid     = "invalid_input" // the caller sent something malformed
	ENotFound    = "not_found"
	EConflict    = "conflict"    // the request does not fit the current state (approve a rejected exception, a token name taken)
	EForbidden   = "forbidden"   // the caller may not do this (approve their own exception; a token without the scope)
	EUnavailable = "unavailable" // a dependency (store, bundle) is not ready, or too busy: fail closed
	EInternal    = "internal"
	// Access control and limits (HTTP 401, 429).
	EUnauthorized = "unauthorized" // no token, or not a valid one
	ERateLimited  = "rate_limited" // the token's rate limit is reached
)

// Error is an error a caller can act on: a code and a message written for them.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or EInternal.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

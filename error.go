package tollgate

import (
	"errors"
	"fmt"
)

// Error codes, stable across the API and the CLI.
const (
	EInvalid     = "invalid_input" // the caller sent something malformed
	ENotFound    = "not_found"
	EConflict    = "conflict"    // the request does not fit the current state (approve a rejected exception)
	EForbidden   = "forbidden"   // the caller may not do this (approve their own exception)
	EUnavailable = "unavailable" // a dependency (store, bundle) is not ready: fail closed
	EInternal    = "internal"
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

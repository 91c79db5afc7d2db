package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pushd/pushd/admin"
)

// Exit codes (docs/PUSHCTL.md).
const (
	exitOK          = 0 // success
	exitFailure     = 1 // any other error: NATS or Consul unreachable, bad reply, unreadable file
	exitUsage       = 2 // bad flags, arguments or flag combination
	exitNotFound    = 3 // no node answered, unknown session, nothing to kick
	exitUndelivered = 4 // publish --require-delivery reached no session
)

// cliError carries an exit code with an error.
type cliError struct {
	code int
	err  error
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// usageErrorf is a bad flag, argument or flag combination (exit 2).
func usageErrorf(format string, args ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// notFoundErrorf is a well-formed request nobody could answer (exit 3).
func notFoundErrorf(format string, args ...any) error {
	return &cliError{code: exitNotFound, err: fmt.Errorf(format, args...)}
}

// classify gives an error from a command's run an exit code.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, admin.ErrNoNodes) || errors.Is(err, admin.ErrNotFound) {
		return &cliError{code: exitNotFound, err: err}
	}
	return &cliError{code: exitFailure, err: err}
}

// exitCode maps what Execute returned to the process exit code. Errors that
// did not come from a command's run are cobra's own: unknown commands, flags
// and argument counts, all usage errors.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code
	}
	return exitUsage
}

// errorLine is the one line printed for err.
func errorLine(err error) string {
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
	if exitCode(err) == exitUsage && !strings.Contains(msg, "--help") {
		msg += " (see --help)"
	}
	return "pushctl: " + msg
}

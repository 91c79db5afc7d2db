package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
)

// Harness is a testing.TB for running the scenario outside `go test`
// (pushbench chaos), so that the parts are started by the same
// internal/pushtest helpers the tests use. Fatal ends Run with the error;
// Cleanup functions run, last first, when Run returns.
type Harness struct {
	// testing.TB is nil: it only supplies the interface's unexported
	// method. Every method the helpers call is defined below.
	testing.TB

	logf     func(format string, args ...any)
	ctx      context.Context
	cancel   context.CancelFunc
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	errs     []error
}

// errFailNow ends a Harness's Run from FailNow.
var errFailNow = errors.New("chaos: failed")

// NewHarness returns a Harness that logs with logf.
func NewHarness(logf func(format string, args ...any)) *Harness {
	ctx, cancel := context.WithCancel(context.Background())
	return &Harness{logf: logf, ctx: ctx, cancel: cancel}
}

// Run calls fn with h, then h's cleanups, and returns the errors reported
// (Error, Fatal) if any. FailNow must be called on fn's goroutine.
func (h *Harness) Run(fn func(testing.TB)) (err error) {
	defer func() {
		if r := recover(); r != nil && r != errFailNow { //nolint:errorlint // a sentinel value
			panic(r)
		}
		h.cancel()
		h.mu.Lock()
		cs := h.cleanups
		h.cleanups = nil
		h.mu.Unlock()
		for i := len(cs) - 1; i >= 0; i-- {
			cs[i]()
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		err = errors.Join(h.errs...)
		if err == nil && h.failed {
			err = errFailNow
		}
	}()
	fn(h)
	return nil
}

func (h *Harness) Cleanup(f func())         { h.mu.Lock(); h.cleanups = append(h.cleanups, f); h.mu.Unlock() }
func (h *Harness) Context() context.Context { return h.ctx }
func (h *Harness) Error(args ...any)        { h.fail(fmt.Sprint(args...)) }
func (h *Harness) Errorf(f string, a ...any) {
	h.fail(fmt.Sprintf(f, a...))
}
func (h *Harness) Fail()                     { h.mu.Lock(); h.failed = true; h.mu.Unlock() }
func (h *Harness) FailNow()                  { h.Fail(); panic(errFailNow) }
func (h *Harness) Failed() bool              { h.mu.Lock(); defer h.mu.Unlock(); return h.failed }
func (h *Harness) Fatal(args ...any)         { h.Error(args...); h.FailNow() }
func (h *Harness) Fatalf(f string, a ...any) { h.Errorf(f, a...); h.FailNow() }
func (h *Harness) Helper()                   {}
func (h *Harness) Log(args ...any)           { h.logf("%s", fmt.Sprint(args...)) }
func (h *Harness) Logf(f string, a ...any)   { h.logf(f, a...) }
func (h *Harness) Name() string              { return "chaos" }
func (h *Harness) Skip(args ...any)          { h.Fatal(append([]any{"skip: "}, args...)...) }
func (h *Harness) SkipNow()                  { h.Fatal("skip") }
func (h *Harness) Skipf(f string, a ...any)  { h.Fatalf("skip: "+f, a...) }
func (h *Harness) Skipped() bool             { return false }
func (h *Harness) Setenv(k, v string)        { h.Fatalf("Setenv %s: not outside go test", k) }

// TempDir returns a new directory removed when Run ends.
func (h *Harness) TempDir() string {
	dir, err := os.MkdirTemp("", "pushd-chaos-")
	if err != nil {
		h.Fatal(err)
	}
	h.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (h *Harness) fail(msg string) {
	h.mu.Lock()
	h.failed = true
	h.errs = append(h.errs, errors.New(msg))
	h.mu.Unlock()
	h.logf("FAIL: %s", msg)
}

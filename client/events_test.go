package client

import (
	"strings"
	"testing"
)

func TestDispatchFuncName(t *testing.T) {
	if !strings.HasSuffix(dispatchFunc, "client.(*Client).dispatch") {
		t.Fatalf("dispatchFunc %q", dispatchFunc)
	}
	if onDispatcher() {
		t.Fatal("a test goroutine taken for the dispatcher")
	}
}

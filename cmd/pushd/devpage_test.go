package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pushd/pushd/admin"
)

// postDev posts body to the node's /dev/publish with a JSON content type.
func postDev(t *testing.T, n *testNode, contentType, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(n.httpURL("/dev/publish"), contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json (body %s)", got, b)
	}
	return resp.StatusCode, b
}

func TestDevPageServed(t *testing.T) {
	t.Parallel()
	n := startPushd(t, "", "--dev")
	for path, want := range map[string]string{
		"/":         "<title>pushd demo</title>",
		"/app.js":   `from "./pushd.js"`,
		"/pushd.js": "var PushdClient = class",
	} {
		resp, err := http.Get(n.httpURL(path))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, want 200 with %q", path, resp.StatusCode, want)
		}
		if strings.HasSuffix(path, ".js") && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("GET %s: Content-Type %q, want text/javascript (module scripts need it)", path, resp.Header.Get("Content-Type"))
		}
	}
}

func TestDevPageOnlyOnDevNodes(t *testing.T) {
	t.Parallel()
	n := startPushd(t, "", "--jwt-secret", testSecret)
	for _, path := range []string{"/", "/pushd.js"} {
		if code, _ := httpGet(t, n.httpURL(path)); code != http.StatusNotFound {
			t.Errorf("GET %s on a production node: %d, want 404", path, code)
		}
	}
	resp, err := http.Post(n.httpURL("/dev/publish"), "application/json", strings.NewReader(`{"target":"all"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /dev/publish on a production node: %d, want 404", resp.StatusCode)
	}
}

func TestDevPublishDelivers(t *testing.T) {
	t.Parallel()
	n := startPushd(t, "", "--dev")
	c := dial(t, n, "alice")
	if err := c.Join(ctxT(t), "team-7/notes"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ body, target, event, data string }{
		{`{"target":"user","key":"alice","event":"greet","id":"m-1","data":{"text":"hi"}}`, "user", "greet", `{"text":"hi"}`},
		{`{"target":"doc","key":"team-7/notes","event":"edit","data":[1,2]}`, "doc", "edit", `[1,2]`},
		{`{"target":"all","data":"everyone"}`, "all", "message", `"everyone"`},
		{`{"target":"user","key":"alice"}`, "user", "message", `null`},
	} {
		code, b := postDev(t, n, "application/json", tc.body)
		var res admin.PublishResult
		if err := json.Unmarshal(b, &res); err != nil || code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", tc.body, code, b)
		}
		if res.Delivered != 1 || res.Nodes != 1 {
			t.Errorf("POST %s: delivered %d on %d nodes, want 1 on 1: %s", tc.body, res.Delivered, res.Nodes, b)
		}
		f := expectPush(t, c, tc.event, tc.data)
		if f.Target != tc.target || f.ID != res.ID {
			t.Errorf("push target %q id %q, want %q and the reported id %q", f.Target, f.ID, tc.target, res.ID)
		}
	}
	if code, b := postDev(t, n, "application/json; charset=utf-8", `{"target":"user","key":"nobody"}`); code != http.StatusOK || !strings.Contains(string(b), `"delivered":0`) {
		t.Errorf("a push nobody receives: %d %s, want 200 with delivered 0", code, b)
	}
}

func TestDevPublishRefusesBadInput(t *testing.T) {
	t.Parallel()
	n := startPushd(t, "", "--dev")
	long := strings.Repeat("e", 129)
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"unknown target", "application/json", `{"target":"session","key":"1"}`, 400, "invalid_target"},
		{"no target", "application/json", `{"key":"alice"}`, 400, "invalid_target"},
		{"invalid user id", "application/json", `{"target":"user","key":"a b"}`, 400, "invalid_key"},
		{"wildcard doc id", "application/json", `{"target":"doc","key":"d.>"}`, 400, "invalid_key"},
		{"empty doc id", "application/json", `{"target":"doc"}`, 400, "invalid_key"},
		{"key with all", "application/json", `{"target":"all","key":"alice"}`, 400, "invalid_key"},
		{"long event", "application/json", `{"target":"all","event":"` + long + `"}`, 400, "invalid_event"},
		{"not JSON", "application/json", `target=user&key=alice`, 400, "bad_json"},
		{"not an object", "application/json", `["user","alice"]`, 400, "bad_json"},
		{"unknown field", "application/json", `{"target":"all","subject":"push.all"}`, 400, "bad_json"},
		{"two values", "application/json", `{"target":"all"}{"target":"all"}`, 400, "bad_json"},
		{"bad data", "application/json", `{"target":"all","data":{nope}}`, 400, "bad_json"},
		{"oversized body", "application/json", `{"target":"all","data":"` + strings.Repeat("x", maxDevPublishBody) + `"}`, 413, "too_large"},
		{"form post", "application/x-www-form-urlencoded", `{"target":"all"}`, 415, "unsupported_media_type"},
		{"text/plain (a cross-site simple request)", "text/plain", `{"target":"all"}`, 415, "unsupported_media_type"},
	} {
		code, b := postDev(t, n, tc.contentType, tc.body)
		var e struct{ Error, Message string }
		if err := json.Unmarshal(b, &e); err != nil || code != tc.status || e.Error != tc.code || e.Message == "" {
			t.Errorf("%s: %d %s, want %d with error %q and a message", tc.name, code, b, tc.status, tc.code)
		}
	}
	resp, err := http.Get(n.httpURL("/dev/publish"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET /dev/publish: %d Allow %q, want 405 Allow POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

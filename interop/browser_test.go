package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/internal/pushtest"
)

// chromium is Debian's browser, driven headless over the DevTools protocol.
const chromium = "/usr/bin/chromium"

// fallbackPage tries a WebSocket first and, when that fails, opens an SSE
// session with POST /http/connect and reads it with the browser's own
// EventSource. It joins a doc with POST /http/send and records every frame
// in window.got for the test to read.
const fallbackPage = `<!doctype html>
<html><body><script>
window.got = []; window.state = "starting"; window.errors = [];
function tryWebSocket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket("ws://" + location.host + "/ws?user=browser");
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("websocket failed"));
  });
}
async function send(frame) {
  const r = await fetch("/http/send?sid=" + window.sid + "&secret=" + encodeURIComponent(window.secret),
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(frame)});
  return r.json();
}
async function main() {
  try { await tryWebSocket(); window.state = "websocket"; return; } catch (e) { window.state = "falling back"; }
  const r = await fetch("/http/connect?user=browser", {method: "POST", body: JSON.stringify({transport: "sse"})});
  const s = await r.json();
  window.sid = s.sid; window.secret = s.secret;
  const es = new EventSource(s.url);
  es.onmessage = async (e) => {
    const f = JSON.parse(e.data);
    window.got.push({id: e.lastEventId, frame: f});
    if (f.type === "hello") {
      const replies = await send({type: "join", doc: "browser-doc", id: "j1"});
      window.state = replies.length === 1 && replies[0].type === "joined" ? "joined" : "join failed: " + JSON.stringify(replies);
    }
  };
  es.onerror = () => window.errors.push(es.readyState);
}
main().catch(e => { window.state = "error: " + e; });
</script></body></html>`

// wsBlockingProxy stands for a proxy that breaks WebSockets: it refuses
// every upgrade to /ws, passes /http/ on to pushd, serves the page, and can
// cut the event streams open through it.
type wsBlockingProxy struct {
	rp         *httputil.ReverseProxy
	wsRefused  atomic.Int32
	mu         sync.Mutex
	streams    map[*http.Request]context.CancelFunc
	lastEvents []string // the Last-Event-ID of each stream request
}

func (p *wsBlockingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/":
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(fallbackPage))
	case r.URL.Path == "/ws":
		p.wsRefused.Add(1)
		http.Error(w, "WebSockets are not allowed here", http.StatusForbidden)
	case r.URL.Path == "/http/sse":
		ctx, cancel := context.WithCancel(r.Context())
		p.mu.Lock()
		p.streams[r] = cancel
		p.lastEvents = append(p.lastEvents, r.Header.Get("Last-Event-ID"))
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			delete(p.streams, r)
			p.mu.Unlock()
			cancel()
		}()
		p.rp.ServeHTTP(w, r.WithContext(ctx))
	case strings.HasPrefix(r.URL.Path, "/http/"):
		p.rp.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// cut ends every event stream open through the proxy, as a flaky network
// would.
func (p *wsBlockingProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cancel := range p.streams {
		cancel()
	}
	return len(p.streams)
}

func (p *wsBlockingProxy) streamRequests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lastEvents...)
}

// browserFrame is one frame the page recorded.
type browserFrame struct {
	ID    string `json:"id"`
	Frame struct {
		Type   string          `json:"type"`
		SID    string          `json:"sid"`
		Target string          `json:"target"`
		Event  string          `json:"event"`
		Data   json.RawMessage `json:"data"`
	} `json:"frame"`
}

// TestBrowserEventSourceFallback: headless Chromium loads a page whose
// WebSocket a proxy refuses; the page falls back to an SSE session, reads it
// with its own EventSource and joins a doc with fetch. A user, a doc, a
// broadcast and a session push reach it; when the proxy cuts the stream,
// the EventSource reconnects by itself with Last-Event-ID and gets the
// pushes published meanwhile, none twice.
func TestBrowserEventSourceFallback(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is not installed (apt-get install -y chromium): %v", chromium, err)
	}
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	srv := startServerOn(t, ns)
	target, _ := url.Parse("http://" + srv.addr)
	proxy := &wsBlockingProxy{streams: map[*http.Request]context.CancelFunc{}}
	proxy.rp = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("headless", "new"), chromedp.DisableGPU)...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(front.URL+"/")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	state := func() string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.state`))
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		return s
	}
	frames := func() []browserFrame {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]browserFrame](`window.got`))
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		return got
	}
	pushtest.Eventually(t, 20*time.Second, func() error {
		if s := state(); s != "joined" {
			return fmt.Errorf("page state %q", s)
		}
		return nil
	})
	if proxy.wsRefused.Load() == 0 {
		t.Fatal("the page never tried the WebSocket")
	}
	got := frames()
	if len(got) != 1 || got[0].Frame.Type != "hello" || got[0].ID == "" {
		t.Fatalf("first frames %+v, want hello with an event ID", got)
	}
	sid := got[0].Frame.SID

	publish := func(subject, event string) {
		t.Helper()
		if err := nc.PublishMsg(&nats.Msg{Subject: subject, Header: nats.Header{"Push-Event": []string{event}}, Data: []byte(`"` + event + `"`)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(n int) []browserFrame {
		t.Helper()
		var fs []browserFrame
		pushtest.Eventually(t, 20*time.Second, func() error {
			if fs = frames(); len(fs) < n {
				return fmt.Errorf("%d frames in the page, want %d", len(fs), n)
			}
			return nil
		})
		return fs
	}
	for _, p := range [][2]string{{"push.user.browser", "to-user"}, {"push.doc.browser-doc", "to-doc"}, {"push.all", "to-all"}, {pushtest.SessionSubject(sid), "to-session"}} {
		publish(p[0], p[1])
		waitFor(len(got) + 1) // in order: one subject at a time
		got = frames()
	}

	if n := proxy.cut(); n != 1 {
		t.Fatalf("cut %d streams, want the page's one", n)
	}
	publish("push.user.browser", "while-cut-1")
	publish("push.user.browser", "while-cut-2")
	got = waitFor(7)
	var events []string
	seen := map[string]bool{}
	for _, f := range got[1:] {
		if seen[f.ID] {
			t.Fatalf("event %s twice: %+v", f.ID, got)
		}
		seen[f.ID] = true
		events = append(events, f.Frame.Event)
	}
	if want := "[to-user to-doc to-all to-session while-cut-1 while-cut-2]"; fmt.Sprint(events) != want {
		t.Fatalf("the page got %v, want %s", events, want)
	}
	reqs := proxy.streamRequests()
	if len(reqs) < 2 || reqs[0] != "" || reqs[len(reqs)-1] != got[4].ID {
		t.Fatalf("stream requests with Last-Event-ID %q, want a reconnect from %s", reqs, got[4].ID)
	}
	if len(frames()) != 7 {
		t.Fatalf("extra frames: %+v", frames())
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/web"
)

// The demo page and its publish endpoint, on dev nodes only (--dev): the page (package web) at
// /, and POST /dev/publish, which publishes a push on NATS exactly as a backend does, so the page
// can send pushes to a user, a doc or everyone and show them arrive.

// maxDevPublishBody bounds a /dev/publish request body.
const maxDevPublishBody = 64 << 10

// devPublishWait is how long /dev/publish collects the nodes' delivery reports.
const devPublishWait = 300 * time.Millisecond

// devPage is a dev node's demo page and its publish endpoint.
type devPage struct {
	prefix string
	nc     atomic.Pointer[nats.Conn] // the node's; /dev/publish answers 503 until use sets it
}

// mountDev adds the demo page and /dev/publish to a dev node's mux; it returns nil (and adds
// nothing) unless cfg.Dev.
func mountDev(mux *http.ServeMux, cfg config) *devPage {
	if !cfg.Dev {
		return nil
	}
	d := &devPage{prefix: cfg.SubjectPrefix}
	mux.Handle("/", web.Handler())
	mux.Handle("/dev/publish", d)
	return d
}

// use gives the page the node's NATS connection once it is up. d may be nil (not a dev node).
func (d *devPage) use(nc *nats.Conn) {
	if d != nil {
		d.nc.Store(nc)
	}
}

// devPublishRequest is the body of POST /dev/publish.
type devPublishRequest struct {
	Target string          `json:"target"` // user, doc or all
	Key    string          `json:"key"`    // the user or doc ID; empty for all
	Event  string          `json:"event"`  // Push-Event; empty means "message"
	ID     string          `json:"id"`     // Push-Id; empty means a fresh one
	Data   json.RawMessage `json:"data"`   // the push's data; absent means null
}

// ServeHTTP publishes the push and answers the delivery reports (admin.PublishResult), or a 4xx
// JSON error {"error","message"} for a request it cannot publish.
func (d *devPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		devError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST with a JSON body")
		return
	}
	// A JSON content type also keeps other sites' pages out: it needs a CORS preflight, which
	// this endpoint does not answer.
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		devError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json")
		return
	}
	req, status, code, err := decodeDevPublish(w, r)
	if err != nil {
		devError(w, status, code, err.Error())
		return
	}
	nc := d.nc.Load()
	if nc == nil || !nc.IsConnected() {
		devError(w, http.StatusServiceUnavailable, "unavailable", "not connected to NATS")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	c := admin.NewClient(admin.ClientConfig{Conn: nc, Prefix: d.prefix, Timeout: devPublishWait})
	res, err := c.Publish(ctx, admin.Message{Target: contract.Target(req.Target), Key: req.Key, Event: req.Event, ID: req.ID, Data: req.Data}, devPublishWait)
	if err != nil {
		devError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// decodeDevPublish reads and checks a request; on error it returns the status and error code.
func decodeDevPublish(w http.ResponseWriter, r *http.Request) (devPublishRequest, int, string, error) {
	var req devPublishRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDevPublishBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return req, http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("body over %d bytes", maxDevPublishBody)
		}
		return req, http.StatusBadRequest, "bad_json", fmt.Errorf("body is not a JSON object {target, key, event, id, data}: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, http.StatusBadRequest, "bad_json", errors.New("body holds more than one JSON value")
	}
	switch contract.Target(req.Target) {
	case contract.TargetUser, contract.TargetDoc:
		if err := contract.ValidateID(req.Key); err != nil {
			return req, http.StatusBadRequest, "invalid_key", fmt.Errorf("%s id: %v", req.Target, err)
		}
	case contract.TargetAll:
		if req.Key != "" {
			return req, http.StatusBadRequest, "invalid_key", errors.New(`target "all" takes no key`)
		}
	default:
		return req, http.StatusBadRequest, "invalid_target", fmt.Errorf("target %q: want user, doc or all", req.Target)
	}
	if len(req.Event) > contract.MaxIDLength || len(req.ID) > contract.MaxIDLength {
		return req, http.StatusBadRequest, "invalid_event", fmt.Errorf("event and id are at most %d bytes", contract.MaxIDLength)
	}
	if len(req.Data) == 0 {
		req.Data = json.RawMessage("null")
	}
	return req, 0, "", nil
}

// devError answers a JSON error, as refused handshakes do.
func devError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "message": message})
}

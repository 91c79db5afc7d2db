# pushd developer targets. `make test` is the whole suite (README.md).

TOOLS ?= $(HOME)/.cache/pushd/tools
export PATH := $(TOOLS)/bin:$(PATH)
GO ?= go
FUZZTIME ?= 15s
# Minimising each new input may take the whole budget otherwise (the default is 60s).
FUZZFLAGS ?= -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s

.PHONY: all build run test tools vet staticcheck unit fuzz chart bench js js-bins web

all: build

build:
	$(GO) build ./...

run:
	$(GO) run ./cmd/pushd --dev

# The whole suite: static checks, every test with the race detector (real
# NATS, Consul agent and WebSocket clients on loopback), bounded fuzzing and
# the Helm chart tests, and the TypeScript SDK's tests (js). Installs missing
# tools first (cached), and the Debian and npm packages the third-party client
# tests in interop/ and the SDK's tests in client/js need.
test: tools vet staticcheck unit fuzz chart js

tools:
	@.ci/install-debs
	@.ci/install-npm
	@.ci/install-consul
	@.ci/install-helm
	@.ci/install-staticcheck

vet:
	$(GO) vet ./...

staticcheck:
	staticcheck ./...

unit:
	$(GO) test -race -count=1 -timeout 25m ./...

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeClientFrame$$' $(FUZZFLAGS) ./node
	$(GO) test -run='^$$' -fuzz='^FuzzEncodePush$$' $(FUZZFLAGS) ./node
	$(GO) test -run='^$$' -fuzz='^FuzzFrameTracker$$' $(FUZZFLAGS) ./node
	$(GO) test -run='^$$' -fuzz='^FuzzParseCursor$$' $(FUZZFLAGS) ./node
	$(GO) test -run='^$$' -fuzz='^FuzzAppendEvent$$' $(FUZZFLAGS) ./node
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeRequest$$' $(FUZZFLAGS) ./node
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeAnswer$$' $(FUZZFLAGS) ./node
	$(GO) test -run='^$$' -fuzz='^FuzzEncodePresence$$' $(FUZZFLAGS) ./node
	$(GO) test -run='^$$' -fuzz='^FuzzVerify$$' $(FUZZFLAGS) ./auth
	$(GO) test -run='^$$' -fuzz='^FuzzDeltas$$' $(FUZZFLAGS) ./presence
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeQuery$$' $(FUZZFLAGS) ./presence
	$(GO) test -run='^$$' -fuzz='^FuzzLimitKey$$' $(FUZZFLAGS) ./node
	$(GO) test -run='^$$' -fuzz='^FuzzClientFrames$$' $(FUZZFLAGS) ./client
	$(GO) test -run='^$$' -fuzz='^FuzzAvoidNode$$' $(FUZZFLAGS) ./client

chart:
	cd helm/test && $(GO) test -count=1 ./...

# The TypeScript SDK (client/js, docs/SDK.md): unit tests against a fake
# server, end-to-end tests against the real binaries below, and the demo page
# in headless Chromium. npm ci ran in .ci/install-npm (make tools).
js: js-bins
	cd client/js && npm test

# The binaries the SDK's end-to-end and browser tests start (bin/ is ignored).
js-bins:
	$(GO) build -o bin/pushd ./cmd/pushd
	$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2

# Regenerates web/static/pushd.js, the SDK bundle the dev node's demo page
# serves (committed; a client/js test fails when it is stale).
web:
	cd client/js && npm run build:web

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./node ./router

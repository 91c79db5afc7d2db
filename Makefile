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
	GO=$(GO) .ci/fuzz-one FuzzDecodeClientFrame ./node $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzEncodePush ./node $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzFrameTracker ./node $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzParseCursor ./node $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzAppendEvent ./node $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzDecodeRequest ./node $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzDecodeAnswer ./node $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzEncodePresence ./node $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzVerify ./auth $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzDeltas ./presence $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzDecodeQuery ./presence $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzLimitKey ./node $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzClientFrames ./client $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzRoute ./internal/wsaccept $(FUZZFLAGS)
	GO=$(GO) .ci/fuzz-one FuzzAvoidNode ./client $(FUZZFLAGS)

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

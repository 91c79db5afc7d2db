package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// devPortTries is how many ports a dev node tries, from its default one up,
// so a second and third `pushd --dev` on one laptop run without flags.
const devPortTries = 10

// listen opens a listener for --flag on addr. A dev node on its default
// address moves on to the next port when one is taken; anyone else is told
// at once which flag to change.
func listen(log *slog.Logger, flag, addr string, fallback bool) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err == nil || !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %w (set --%s to a free address)", flag, addr, err, flag)
		}
		return l, nil
	}
	host, port, perr := splitPort(addr)
	if perr != nil {
		return nil, perr
	}
	for i := 1; i < devPortTries; i++ {
		next := net.JoinHostPort(host, strconv.Itoa(port+i))
		if l, err := net.Listen("tcp", next); err == nil {
			log.Info("dev mode: default port taken, using the next free one", "flag", flag, "wanted", addr, "address", next)
			return l, nil
		}
	}
	return nil, fmt.Errorf("--%s %s: ports %d to %d are all taken (set --%s)", flag, addr, port, port+devPortTries-1, flag)
}

func splitPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: bad port", addr)
	}
	return host, port, nil
}

// natsAlready reports whether a NATS server answers on addr, so a second dev
// node can join the first one's embedded server instead of failing to start
// its own.
func natsAlready(addr string) bool {
	nc, err := nats.Connect("nats://"+addr, nats.Timeout(time.Second), nats.MaxReconnects(0), nats.NoReconnect())
	if err != nil {
		return false
	}
	nc.Close()
	return true
}

// portFree reports whether addr can be listened on now.
func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

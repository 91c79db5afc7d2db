//go:build !linux

package node

import "errors"

// poller is Linux-only (epoll); elsewhere every session keeps a read goroutine.
type poller struct{}

func newPoller() (*poller, error)          { return nil, errors.ErrUnsupported }
func (p *poller) register(*parkConn) error { return errors.ErrUnsupported }
func (p *poller) arm(*parkConn) error      { return errors.ErrUnsupported }
func (p *poller) forget(*parkConn)         {}
func (p *poller) close()                   {}

// readNonBlocking is never called: without a poller no session parks.
func (c *parkConn) readNonBlocking(uintptr) bool {
	c.err = errors.ErrUnsupported
	return true
}

package node

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
)

// poller watches parked sessions' sockets with one epoll instance and one
// goroutine, owned by the Node: started by Start, stopped by Close after every
// session has ended.
type poller struct {
	epfd int
	wake [2]int // a pipe whose read end interrupts epoll_wait on close
	stop atomic.Bool
	done sync.WaitGroup

	mu    sync.Mutex
	conns map[int32]*parkConn // by fd
}

// Level-triggered and one-shot: an armed socket that already has bytes fires
// at once (no lost wake-up between the reader's last read and arming), and it
// fires once per parking.
const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, conns: make(map[int32]*parkConn)}
	if err := syscall.Pipe2(p.wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p.wake[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, err
	}
	p.done.Add(1)
	go p.run()
	return p, nil
}

func (p *poller) run() {
	defer p.done.Done()
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return // EBADF after close; nothing else is expected
		}
		for i := range events[:n] {
			fd := events[i].Fd
			if fd == int32(p.wake[0]) {
				if p.stop.Load() {
					return
				}
				continue
			}
			p.mu.Lock()
			c := p.conns[fd]
			p.mu.Unlock()
			if c != nil {
				c.resume()
			}
		}
	}
}

// register adds c's socket to the epoll set, disarmed, and to the poller's
// table. The read side's owner calls it once, before it first parks: nothing
// it writes to c may happen after the socket is armed, because from then on
// another goroutine may own c. The fd is used inside RawConn.Control, so it
// cannot be closed (and its number reused) meanwhile.
func (p *poller) register(c *parkConn) error {
	if p == nil {
		return errors.ErrUnsupported
	}
	var err error
	cerr := c.raw.Control(func(fd uintptr) {
		// Only EPOLLONESHOT: no events until arm (errors and hang-ups are
		// always reported; a spurious resume is harmless).
		ev := syscall.EpollEvent{Events: syscall.EPOLLONESHOT, Fd: int32(fd)}
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		if err != nil {
			return
		}
		c.fd, c.polled = int32(fd), true
		p.mu.Lock()
		p.conns[c.fd] = c
		p.mu.Unlock()
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// arm hands c's socket to the poller until it turns readable. It writes
// nothing to c: once armed, c may already belong to a resumed reader.
func (p *poller) arm(c *parkConn) error {
	if p == nil {
		return errors.ErrUnsupported
	}
	var err error
	cerr := c.raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(fd)}
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// forget drops c once its session ended. The kernel drops the epoll
// registration itself when the socket closes.
func (p *poller) forget(c *parkConn) {
	if p == nil || !c.polled {
		return
	}
	p.mu.Lock()
	if p.conns[c.fd] == c {
		delete(p.conns, c.fd)
	}
	p.mu.Unlock()
}

// close stops the poller goroutine and releases its descriptors.
func (p *poller) close() {
	if p == nil {
		return
	}
	p.stop.Store(true)
	_, _ = syscall.Write(p.wake[1], []byte{0})
	p.done.Wait()
	p.closeFDs()
}

func (p *poller) closeFDs() {
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
	syscall.Close(p.epfd)
}

// readNonBlocking is parkConn's RawConn.Read callback: one read(2) on the
// non-blocking socket.
func (c *parkConn) readNonBlocking(fd uintptr) bool {
	c.n, c.err = syscall.Read(int(fd), c.buf)
	if c.n < 0 {
		c.n = 0
	}
	return true // never wait: the caller parks instead
}

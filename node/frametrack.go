package node

// frameTracker follows frame boundaries in the client's byte stream (RFC 6455
// section 5.2) so a reader parks only between frames. It reads headers only and
// skips payloads by count; validating frames is gws's job, and a frame gws
// rejects ends the session before the tracker could matter.
type frameTracker struct {
	need  uint64 // payload bytes left in the current frame
	plen  uint64 // payload length being read from the header
	hlen  uint8  // header bytes seen of the current frame
	hwant uint8  // the header's full length, once its second byte is seen
	ext   uint8  // the extended payload length's size: 0, 2 or 8
}

// between reports whether the bytes fed so far end exactly at a frame's end.
func (t *frameTracker) between() bool { return t.need == 0 && t.hlen == 0 }

func (t *frameTracker) feed(b []byte) {
	for len(b) > 0 {
		if t.need > 0 {
			k := t.need
			if uint64(len(b)) < k {
				k = uint64(len(b))
			}
			t.need -= k
			b = b[k:]
			continue
		}
		c := b[0]
		b = b[1:]
		switch {
		case t.hlen == 1:
			switch l := c & 0x7f; l {
			case 126:
				t.ext = 2
			case 127:
				t.ext = 8
			default:
				t.ext, t.plen = 0, uint64(l)
			}
			t.hwant = 2 + t.ext
			if c&0x80 != 0 {
				t.hwant += 4 // masking key
			}
		case t.hlen >= 2 && t.hlen < 2+t.ext:
			t.plen = t.plen<<8 | uint64(c)
		}
		t.hlen++
		if t.hlen >= 2 && t.hlen == t.hwant {
			t.need, t.plen, t.hlen, t.hwant = t.plen, 0, 0, 0
		}
	}
}

package node

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// clientFrame builds a masked client frame header for a payload of n bytes,
// followed by the payload, with the length in the shortest form RFC 6455
// allows or, when long is set, the 64-bit form.
func clientFrame(n int, long bool) []byte {
	b := []byte{0x81}
	switch {
	case long:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 1, 2, 3, 4) // masking key
	return append(b, make([]byte, n)...)
}

// TestFrameTrackerBoundaries feeds frame sequences cut at every kind of
// place and checks that the tracker reports "between frames" exactly at frame
// ends: parking anywhere else would corrupt gws's parse.
func TestFrameTrackerBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 2, 124, 125, 126, 127, 300, 65535, 65536, 70000}
	for round := 0; round < 200; round++ {
		var stream []byte
		ends := map[int]bool{0: true}
		for i := 0; i < 1+rng.IntN(8); i++ {
			stream = append(stream, clientFrame(sizes[rng.IntN(len(sizes))], rng.IntN(4) == 0)...)
			ends[len(stream)] = true
		}
		var tr frameTracker
		for pos := 0; pos < len(stream); {
			k := 1 + rng.IntN(20)
			if rng.IntN(3) == 0 {
				k = 1 + rng.IntN(70000)
			}
			k = min(k, len(stream)-pos)
			tr.feed(stream[pos : pos+k])
			pos += k
			if got := tr.between(); got != ends[pos] {
				t.Fatalf("round %d: after %d of %d bytes between() = %v, want %v", round, pos, len(stream), got, ends[pos])
			}
		}
	}
}

// TestFrameTrackerEveryByte checks each prefix of a mixed stream one byte at a time.
func TestFrameTrackerEveryByte(t *testing.T) {
	var stream []byte
	ends := map[int]bool{0: true}
	for _, n := range []int{0, 5, 125, 126, 200, 0, 65536} {
		stream = append(stream, clientFrame(n, false)...)
		ends[len(stream)] = true
	}
	stream = append(stream, clientFrame(3, true)...)
	ends[len(stream)] = true
	var tr frameTracker
	for i := range stream {
		tr.feed(stream[i : i+1])
		if got := tr.between(); got != ends[i+1] {
			t.Fatalf("after byte %d: between() = %v, want %v", i+1, got, ends[i+1])
		}
	}
}

// FuzzFrameTracker checks that feeding a stream in two pieces agrees with
// feeding it whole, whatever the bytes.
func FuzzFrameTracker(f *testing.F) {
	f.Add(clientFrame(3, false), 2)
	f.Add(append(clientFrame(130, false), clientFrame(1, true)...), 7)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if cut < 0 || cut > len(b) {
			return
		}
		var whole, split frameTracker
		whole.feed(b)
		split.feed(b[:cut])
		split.feed(b[cut:])
		if whole != split {
			t.Fatalf("whole %+v, split at %d %+v", whole, cut, split)
		}
	})
}

package node

// sessionRare holds the session state that few sessions use, allocated on
// first use: it keeps an idle session in the 512-byte size class instead of
// 640 (BENCHMARKS.md, "Idle memory").
type sessionRare struct {
	// info is the token's info claim, shown in presence; set at activation,
	// before the session is shared, and never changed.
	info []byte
	// presenceLimit bounds presence requests (presence.go); strikes counts
	// dropped frames (admitFrame). Read side only.
	presenceLimit bucket
	strikes       bucket
	// owes are the receipts the session owes, oldest first (receipts.go).
	// Guarded by session.mu.
	owes []owed
}

// rare returns the session's rare state, allocating it on first use.
func (s *session) rare() *sessionRare {
	if r := s.rareP.Load(); r != nil {
		return r
	}
	r := new(sessionRare)
	if s.rareP.CompareAndSwap(nil, r) {
		return r
	}
	return s.rareP.Load()
}

// info is the token's info claim, nil when it had none.
func (s *session) info() []byte {
	if r := s.rareP.Load(); r != nil {
		return r.info
	}
	return nil
}

package node

import (
	"net/netip"
	"strings"
	"testing"
)

func TestLimitKey(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, c := range []struct {
		remote string
		xff    []string
		want   string
		warn   bool
	}{
		{"203.0.113.9:4000", nil, "203.0.113.9", false},
		{"203.0.113.9:4000", []string{"198.51.100.1"}, "203.0.113.9", true}, // an untrusted peer's header is not believed
		{"10.1.2.3:4000", nil, "10.1.2.3", false},                           // a proxy without the header is the client
		{"10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1", false},
		{"10.1.2.3:4000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1", false},  // through two proxies
		{"10.1.2.3:4000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1", false},   // what the client wrote is left of its address
		{"10.1.2.3:4000", []string{"1.1.1.1", "198.51.100.1"}, "198.51.100.1", false}, // several headers
		{"10.1.2.3:4000", []string{"garbage, 10.9.9.9"}, "10.9.9.9", false},           // garbage: the last proxy known
		{"10.1.2.3:4000", []string{"10.4.4.4"}, "10.4.4.4", false},                    // only proxies: the farthest
		{"10.1.2.3:4000", []string{"[2001:db8:1:2::7]:555"}, "2001:db8:1:2::/64", false},
		{"[2001:db8:a:b:c::1]:80", nil, "2001:db8:a:b::/64", false}, // IPv6 counts per /64
		{"[::ffff:203.0.113.9]:80", nil, "203.0.113.9", false},
		{"[fd00::1]:80", []string{"203.0.113.5"}, "203.0.113.5", false},
		{"pipe", nil, "pipe", false},
	} {
		got, warn := limitKey(c.remote, c.xff, trusted)
		if got != c.want || warn != c.warn {
			t.Errorf("limitKey(%q, %q) = %q, %v; want %q, %v", c.remote, c.xff, got, warn, c.want, c.warn)
		}
	}
}

// FuzzLimitKey: any X-Forwarded-For from a trusted proxy yields a key that
// is an address or a /64, never a string the client chose.
func FuzzLimitKey(f *testing.F) {
	f.Add("1.2.3.4, 10.0.0.1")
	f.Add("[2001:db8::1]:80,garbage")
	f.Add(",,,")
	f.Add("fe80::1%eth0")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, xff string) {
		key, _ := limitKey("10.0.0.2:1", []string{xff}, trusted)
		if strings.Contains(key, "/") {
			if p, err := netip.ParsePrefix(key); err != nil || p.Bits() != 64 {
				t.Fatalf("key %q is not a /64", key)
			}
			return
		}
		if _, err := netip.ParseAddr(key); err != nil {
			t.Fatalf("key %q from %q is not an address", key, xff)
		}
	})
}

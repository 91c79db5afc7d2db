package contract

import (
	"strconv"
	"testing"
	"time"
)

func BenchmarkSubjectsParse(b *testing.B) {
	s := NewSubjects("")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := s.Parse("push.session.3.1862263214372491264"); !ok {
			b.Fatal("parse")
		}
	}
}

func BenchmarkParseTimestamp(b *testing.B) {
	v := strconv.FormatInt(time.Now().UnixNano(), 10)
	b.ReportAllocs()
	for b.Loop() {
		if ParseTimestamp(v) == 0 {
			b.Fatal("zero")
		}
	}
}

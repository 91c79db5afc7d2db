package contract

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIDLength is the longest user or document ID, in bytes.
const MaxIDLength = 128

// ErrInvalidID is returned for a user or document ID that cannot be used.
var ErrInvalidID = errors.New("pushd: invalid id")

// ValidateID reports whether id can be a user or document ID.
//
// IDs are application data (emails, file names, dotted namespaces), so any
// printable UTF-8 text up to MaxIDLength bytes is accepted, dots included. An
// ID becomes the tail of a NATS subject, where a dot separates tokens, so a
// dotted ID is a multi-token subject: it must not start or end with a dot or
// hold two in a row (no empty token), and it must not contain whitespace or
// the wildcards '*' and '>', so it can never address another subject.
func ValidateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidID)
	case len(id) > MaxIDLength:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidID, MaxIDLength)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidID)
	case id[0] == '.' || id[len(id)-1] == '.' || strings.Contains(id, ".."):
		return fmt.Errorf("%w: %q has an empty token: it must not start or end with '.' or hold \"..\"", ErrInvalidID, id)
	}
	for i, r := range id {
		if r == '*' || r == '>' || r == ' ' || !unicode.IsPrint(r) {
			return fmt.Errorf("%w: %q at byte %d is not allowed (printable text without whitespace, '*' or '>')", ErrInvalidID, r, i)
		}
	}
	return nil
}

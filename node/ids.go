package node

import (
	"errors"
	"fmt"
)

// ErrInvalidID is returned for a user or doc ID that cannot be a NATS subject
// token.
var ErrInvalidID = errors.New("pushd: invalid id")

// ValidateID reports whether id can be a user or document ID: 1 to 128
// printable ASCII characters, none of them whitespace, '.', '*' or '>'. IDs
// become NATS subject tokens, so anything else could address other subjects.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidID)
	}
	if len(id) > defaultMaxIDLength {
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidID, defaultMaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c > '~' || c == '.' || c == '*' || c == '>' {
			return fmt.Errorf("%w: character %q at %d is not allowed (printable ASCII without whitespace, '.', '*', '>')", ErrInvalidID, c, i)
		}
	}
	return nil
}

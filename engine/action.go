package engine

import (
	"fmt"
)

// Action is what a Change does to an account.
type Action uint8

// The actions, in the order they happen to an account.
const (
	// NoAction is the zero Action.
	NoAction Action = iota
	// Import copies the whole account from its source into the archive.
	Import
	// Export copies the archive onto the target for the first time.
	Export
	// CatchUp is an incremental import+export pass.
	CatchUp
	// Cutover freezes, syncs, verifies, flips and unfreezes, as one action.
	Cutover
	// Rollback routes the account back to its source, unfrozen.
	Rollback
	// Adopt records an account already on its target as done.
	Adopt
)

var actionNames = [...]string{"no-op", "import", "export", "catch-up", "cutover", "rollback", "adopt"}

// String returns the action's name as used in output and the journal.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", a)
}

// Symbol returns the one-character marker shown in the human listing:
// '+' import and export, '~' catch-up, '>' cutover, '-' rollback, '='
// adopt.
func (a Action) Symbol() rune {
	switch a {
	case Import, Export:
		return '+'
	case CatchUp:
		return '~'
	case Cutover:
		return '>'
	case Rollback:
		return '-'
	case Adopt:
		return '='
	}
	return ' '
}

// Destructive reports whether the action takes an account away from where
// clients find it today and should be flagged for review.
func (a Action) Destructive() bool { return a == Rollback }

// ParseAction returns the action with the given name.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if n == s && i > 0 {
			return Action(i), nil
		}
	}
	return NoAction, fmt.Errorf("unknown action %q", s)
}

// MarshalText encodes the action by name.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText decodes an action name.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

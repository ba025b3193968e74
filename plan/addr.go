package plan

import "github.com/mailmig/mailmig/plan/canon"

// normAddress is the comparison key of an address ([canon.Address], shared
// with the engine's journal keys and the proxy's route table).
func normAddress(a string) string { return canon.Address(a) }

// Package canon holds the canonical form of an account address that the
// plan (account lookup, duplicate detection), the engine (journal keys)
// and the proxy's route table (route and alias keys) must agree on
// forever: a journal written by one and a route table written by another
// are joined on it. A change here changes every key ever stored, so it is
// the only place that decides, and TestCallSitesAgree in engine checks the
// three packages still call it.
//
// It is a leaf under plan so that plan still imports none of mailmig's
// other packages, and the proxy can use it without importing plan (and
// HCL).
package canon

// Package plan parses and validates mailmig's HCL migration plan into a typed
// [Migration]. It speaks hcl.Diagnostics only; nothing outside this package
// touches HCL types, and it imports none of mailmig's packages.
package plan

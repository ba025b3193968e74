package plan

import (
	"github.com/hashicorp/hcl/v2"
)

// Load loads a plan from path: a single file, or a directory whose *.hcl
// files together form the plan.
func Load(path string, opts ...Option) (*Migration, hcl.Diagnostics) {
	return &Migration{}, nil
}

// LoadFile loads a plan from one file.
func LoadFile(path string, opts ...Option) (*Migration, hcl.Diagnostics) {
	return &Migration{}, nil
}

// LoadDir loads every *.hcl file in dir (not recursively) as one plan.
func LoadDir(dir string, opts ...Option) (*Migration, hcl.Diagnostics) {
	return &Migration{}, nil
}

// Parse loads a plan from src, reporting positions against filename.
func Parse(filename string, src []byte, opts ...Option) (*Migration, hcl.Diagnostics) {
	return &Migration{}, nil
}

package plan

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// byteUnits are the accepted size units: decimal (kB, MB, GB, TB) and
// binary (KiB, MiB, GiB, TiB), matched case-insensitively.
var byteUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// ParseBytes parses a size such as "40MiB", "1.5 GB", "512" or, when
// perSecond is true, "40MiB/s". Units: B, kB/KB, MB, GB, TB (powers of
// 1000) and KiB, MiB, GiB, TiB (powers of 1024).
func ParseBytes(s string, perSecond bool) (int64, error) {
	t := strings.TrimSpace(s)
	if perSecond {
		t = strings.TrimSpace(strings.TrimSuffix(t, "/s"))
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("%q does not start with a number", s)
	}
	mult, ok := byteUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%q has an unknown unit %q (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, t[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number followed by a unit", s)
	}
	v := f * float64(mult)
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(math.Round(v)), nil
}

// attrBytes decodes a size attribute: a number of bytes or a string with
// a unit.
func (l *loader) attrBytes(attrs hcl.Attributes, name string, perSecond bool) (int64, bool) {
	attr := attrs[name]
	if attr == nil {
		return 0, false
	}
	v := l.eval(attr.Expr)
	if v == cty.NilVal {
		return 0, false
	}
	example := fmt.Sprintf("Write a number of bytes or a string with a unit, for example %s = \"40MiB\".", name)
	switch v.Type() {
	case cty.Number:
		f := v.AsBigFloat()
		n, acc := f.Int64()
		if acc != big.Exact || n < 0 {
			l.errorf(attr.Expr.Range(), "Invalid byte size", "The attribute %q must be a whole, non-negative number of bytes. %s", name, example)
			return 0, false
		}
		return n, true
	case cty.String:
		n, err := ParseBytes(v.AsString(), perSecond)
		if err != nil {
			l.errorf(attr.Expr.Range(), "Invalid byte size", "The value of %q is not a size: %v. %s", name, err, example)
			return 0, false
		}
		return n, true
	}
	l.typeErr(attr, "a size", v, example)
	return 0, false
}

// attrDuration decodes a Go duration string such as "30s" or "5m".
func (l *loader) attrDuration(attrs hcl.Attributes, name string) (time.Duration, bool) {
	s, attr, ok := l.attrString(attrs, name)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < 0 {
		l.errorf(attr.Expr.Range(), "Invalid duration",
			"The value %q of %q is not a duration. Write a number with a unit (ms, s, m, h), for example %s = \"30s\".", s, name, name)
		return 0, false
	}
	return d, true
}

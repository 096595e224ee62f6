package llm

import (
	"math"
	"math/bits"
	"sync"
)

// The integer operators of docs/llm-spec.md §3. Each is defined on every
// input its range allows; none depends on the platform's rounding.

// Sat8 clamps v to the int8 range [−128, 127].
func Sat8(v int64) int8 {
	return int8(min(max(v, -128), 127))
}

// Requant rounds acc / 2^s half up (an arithmetic shift of acc + 2^(s−1))
// and saturates it to int8. s ≥ 1.
func Requant(acc int64, s uint) int8 {
	return Sat8((acc + 1<<(s-1)) >> s)
}

// FloorDiv returns ⌊a / b⌋ for b > 0 (Go's / truncates toward zero).
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// ISqrt returns ⌊√v⌋ for v ≥ 0, exactly (Newton's iteration on
// integers from a power of two above the root, which decreases
// monotonically to it).
func ISqrt(v int64) int64 {
	if v < 2 {
		return max(v, 0)
	}
	x := int64(1) << ((bits.Len64(uint64(v)) + 1) / 2) // ≥ √v
	for {
		y := (x + v/x) / 2
		if y >= x {
			return x
		}
		x = y
	}
}

// NormScale is LayerNorm's output scale: a centred value one standard
// deviation from the mean maps to NormScale.
const NormScale = 32

// LayerNorm maps x (len D, a power of two) to int8: μ = ⌊Σx / D⌋, cᵢ =
// xᵢ − μ, σ = ⌊√(⌊Σcᵢ² / D⌋)⌋ (1 when that is 0), yᵢ = Sat8(⌊cᵢ·32 / σ⌋).
// It has no learned gain or bias. dst has len D.
func LayerNorm(dst []int8, x []int32) {
	d := int64(len(x))
	var sum int64
	for _, v := range x {
		sum += int64(v)
	}
	mu := FloorDiv(sum, d)
	var sq int64
	for _, v := range x {
		c := int64(v) - mu
		sq += c * c
	}
	sigma := max(ISqrt(sq/d), 1)
	for i, v := range x {
		dst[i] = Sat8(FloorDiv((int64(v)-mu)*NormScale, sigma))
	}
}

// ExpFrac is the softmax's exponent resolution: exponents are base-2 in
// units of 1/ExpFrac.
const ExpFrac = 256

// exp2Table[f] = ⌊65536 · 2^(−f/256) + 1/2⌋ for f in [0, 256).
var exp2Table = sync.OnceValue(func() *[ExpFrac]int64 {
	t := new([ExpFrac]int64)
	for f := range t {
		t[f] = int64(math.Floor(65536*math.Exp2(-float64(f)/ExpFrac) + 0.5))
	}
	return t
})

// Exp2Table returns the softmax's table: entry f is ⌊65536·2^(−f/256) +
// 1/2⌋ (docs/llm-spec.md lists its SHA-256).
func Exp2Table() [ExpFrac]int64 { return *exp2Table() }

// IExp returns 65536 · 2^(−t/256), truncated: Exp2Table[t mod 256] >>
// ⌊t/256⌋ for t ≥ 0, and 0 from t = 17·256 on (the table's largest entry
// is 2^16).
func IExp(t int64) int64 {
	if t < 0 {
		t = 0
	}
	if t >= 17*ExpFrac {
		return 0
	}
	return exp2Table()[t%ExpFrac] >> (t / ExpFrac)
}

// ProbBits is the softmax's output precision: probabilities are in units
// of 2^−15.
const ProbBits = 15

// Softmax writes into p the probabilities of scores (raw int32 q·k) over
// the positions present: zⱼ = (sⱼ − max s) >> shift, eⱼ = IExp(−zⱼ), pⱼ =
// ⌊eⱼ · 2^15 / Σe⌋. The maximum's eⱼ is 65536, so Σe > 0.
func Softmax(p []int64, scores []int64, shift uint) {
	m := scores[0]
	for _, s := range scores {
		m = max(m, s)
	}
	var sum int64
	for j, s := range scores {
		p[j] = IExp(-((s - m) >> shift))
		sum += p[j]
	}
	for j := range scores {
		p[j] = p[j] << ProbBits / sum
	}
}

// geluTable[u+128] = Sat8(round half away from zero(32 · gelu(u/32))),
// gelu(x) = x·Φ(x) = x/2 · (1 + erf(x/√2)).
var geluTable = sync.OnceValue(func() *[256]int8 {
	t := new([256]int8)
	for u := -128; u < 128; u++ {
		x := float64(u) / NormScale
		g := x / 2 * (1 + math.Erf(x/math.Sqrt2))
		t[u+128] = Sat8(int64(math.Round(NormScale * g)))
	}
	return t
})

// GELU returns the integer GELU of u: the table entry for u, 32·gelu(u/32)
// rounded half away from zero.
func GELU(u int8) int8 { return geluTable()[int(u)+128] }

// GELUTable returns the whole table, indexed by u + 128.
func GELUTable() [256]int8 { return *geluTable() }

// GEMV computes y[j] = Σᵢ x[i]·W[i][j] for W row-major k×m (len(x) = k,
// len(y) = m), accumulating in int32 (|x·w| ≤ 2^14 and k ≤ 2^16).
func GEMV(y []int32, x []int8, w []int8) {
	m := len(y)
	clear(y)
	for i, xi := range x {
		if xi == 0 {
			continue
		}
		a := int32(xi)
		row := w[i*m : (i+1)*m]
		for j, wij := range row {
			y[j] += a * int32(wij)
		}
	}
}

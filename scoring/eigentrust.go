package scoring

import (
	"math"
	"sort"
)

// Opinion is what one peer (the truster) has seen of another: the
// decayed weight of satisfactory and unsatisfactory outcomes.
type Opinion struct {
	Sat, Unsat float64
	// Miss is the part of Unsat that came from missing or late answers
	// (which can be infrastructure) rather than wrong ones.
	Miss float64
}

// Opinions maps truster → trustee → opinion.
type Opinions map[string]map[string]Opinion

// Add adds to i's opinion of j.
func (o Opinions) Add(i, j string, sat, unsat float64) { o.AddMiss(i, j, sat, unsat, 0) }

// AddMiss adds to i's opinion of j, miss of unsat being missed answers.
func (o Opinions) AddMiss(i, j string, sat, unsat, miss float64) {
	row := o[i]
	if row == nil {
		row = map[string]Opinion{}
		o[i] = row
	}
	op := row[j]
	op.Sat += sat
	op.Unsat += unsat
	op.Miss += miss
	row[j] = op
}

// EigenTrustParams configure EigenTrust.
type EigenTrustParams struct {
	// Alpha is the weight of the pre-trusted distribution in each step
	// (the paper's a; it also guarantees convergence and bounds what a
	// malicious collective can capture).
	Alpha float64
	// Epsilon stops the iteration when the L1 change falls below it.
	Epsilon float64
	// MaxIter bounds the iteration.
	MaxIter int
}

// DefaultEigenTrustParams are a = 0.15, ε = 1e-9, 100 iterations.
func DefaultEigenTrustParams() EigenTrustParams {
	return EigenTrustParams{Alpha: 0.15, Epsilon: 1e-9, MaxIter: 100}
}

// EigenTrust computes global trust by the algorithm of Kamvar, Schlosser
// and Garcia-Molina, "The EigenTrust Algorithm for Reputation Management
// in P2P Networks", WWW 2003 (Algorithm 2, with pre-trusted peers):
//
//	s_ij = Sat_ij − Unsat_ij,  c_ij = max(s_ij, 0) / Σ_j max(s_ij, 0)
//	t(k+1) = (1 − a)·Cᵀ·t(k) + a·p,  t(0) = p
//
// where p is uniform over the pre-trusted peers. A truster with no
// positive opinion trusts p instead (the paper's rule for inactive peers).
// Peers that appear nowhere get no entry. The result sums to 1 over all
// peers. An empty pretrusted set makes p uniform over every truster.
func EigenTrust(op Opinions, pretrusted []string, prm EigenTrustParams) map[string]float64 {
	// Index every peer that appears, in a fixed order, so the result does
	// not depend on map iteration.
	seen := map[string]bool{}
	for i, row := range op {
		seen[i] = true
		for j := range row {
			seen[j] = true
		}
	}
	for _, p := range pretrusted {
		seen[p] = true
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		return map[string]float64{}
	}
	idx := make(map[string]int, len(ids))
	for k, id := range ids {
		idx[id] = k
	}
	n := len(ids)
	p := make([]float64, n)
	pre := 0
	for _, id := range pretrusted {
		if p[idx[id]] == 0 {
			p[idx[id]] = 1
			pre++
		}
	}
	if pre == 0 {
		for i := range op {
			p[idx[i]] = 1
			pre++
		}
		if pre == 0 {
			for k := range p {
				p[k] = 1
			}
			pre = n
		}
	}
	for k := range p {
		p[k] /= float64(pre)
	}
	// Normalized rows, as sparse lists.
	type entry struct {
		j int
		c float64
	}
	rows := make([][]entry, n)
	for i, row := range op {
		var sum float64
		for j, o := range row {
			if j != i {
				sum += math.Max(o.Sat-o.Unsat, 0)
			}
		}
		if sum == 0 {
			continue
		}
		ii := idx[i]
		for j, o := range row {
			if s := o.Sat - o.Unsat; s > 0 && j != i {
				rows[ii] = append(rows[ii], entry{idx[j], s / sum})
			}
		}
		sort.Slice(rows[ii], func(a, b int) bool { return rows[ii][a].j < rows[ii][b].j })
	}
	t := append([]float64(nil), p...)
	next := make([]float64, n)
	for iter := 0; iter < max(prm.MaxIter, 1); iter++ {
		for k := range next {
			next[k] = prm.Alpha * p[k]
		}
		for i := 0; i < n; i++ {
			if t[i] == 0 {
				continue
			}
			w := (1 - prm.Alpha) * t[i]
			if len(rows[i]) == 0 {
				for k := range next {
					next[k] += w * p[k]
				}
				continue
			}
			for _, e := range rows[i] {
				next[e.j] += w * e.c
			}
		}
		var delta float64
		for k := range t {
			delta += math.Abs(next[k] - t[k])
		}
		t, next = next, t
		if delta < prm.Epsilon {
			break
		}
	}
	out := make(map[string]float64, n)
	for k, id := range ids {
		out[id] = t[k]
	}
	return out
}

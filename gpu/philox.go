package gpu

import "math/bits"

// Philox4x32-10 constants from Salmon, Moraes, Dror and Shaw, "Parallel
// Random Numbers: As Easy as 1, 2, 3", SC11 (2011), and the Random123
// library: the round multipliers M0, M1 and the Weyl key increments W0, W1.
const (
	philoxM0 = 0xD2511F53
	philoxM1 = 0xCD9E8D57
	philoxW0 = 0x9E3779B9
	philoxW1 = 0xBB67AE85
)

// PhiloxRounds is the number of rounds of Philox4x32 used by poai (10, the
// Random123 default, which the authors show passes BigCrush with margin).
const PhiloxRounds = 10

// Philox4x32 is the Philox4x32-10 block function: it maps a 128-bit counter
// and a 64-bit key to 128 pseudo-random bits. It is a pure function, so any
// element of a generated matrix can be computed independently, on the CPU or
// on a GPU, with identical results.
func Philox4x32(ctr [4]uint32, key [2]uint32) [4]uint32 {
	c0, c1, c2, c3 := ctr[0], ctr[1], ctr[2], ctr[3]
	k0, k1 := key[0], key[1]
	for r := 0; r < PhiloxRounds; r++ {
		if r > 0 {
			k0 += philoxW0
			k1 += philoxW1
		}
		hi0, lo0 := bits.Mul32(philoxM0, c0)
		hi1, lo1 := bits.Mul32(philoxM1, c2)
		c0, c1, c2, c3 = hi1^c1^k0, lo1, hi0^c3^k1, lo0
	}
	return [4]uint32{c0, c1, c2, c3}
}

// PhiloxSchedule is the key schedule of Philox4x32-10 for one key: the
// round keys, computed once for a matrix instead of at every block.
type PhiloxSchedule [PhiloxRounds][2]uint32

// NewPhiloxSchedule returns the key schedule of key.
func NewPhiloxSchedule(key [2]uint32) *PhiloxSchedule {
	var s PhiloxSchedule
	for r := range s {
		s[r] = key
		key[0] += philoxW0
		key[1] += philoxW1
	}
	return &s
}

// Block is Philox4x32(ctr, key) for the schedule's key.
func (s *PhiloxSchedule) Block(ctr [4]uint32) [4]uint32 {
	c0, c1, c2, c3 := ctr[0], ctr[1], ctr[2], ctr[3]
	for r := range s {
		p0 := uint64(philoxM0) * uint64(c0)
		p1 := uint64(philoxM1) * uint64(c2)
		c0, c1, c2, c3 = uint32(p1>>32)^c1^s[r][0], uint32(p1), uint32(p0>>32)^c3^s[r][1], uint32(p0)
	}
	return [4]uint32{c0, c1, c2, c3}
}

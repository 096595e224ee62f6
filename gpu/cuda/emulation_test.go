package cuda

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/poai-network/poai/gpu"
)

// TestKernelsEmulated compiles the CUDA kernels (all but the tensor-core
// GEMMs) for the host with testdata/emulate.cpp and checks every output
// against package gpu's definitions bit for bit: the Philox fills, the
// row leaf hash at row lengths that put the padding in every position,
// and the VRAM blocks, lanes and leaves.
func TestKernelsEmulated(t *testing.T) {
	cxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skip("no host C++ compiler (g++) to emulate the kernels with")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "emulate")
	if out, err := exec.Command(cxx, "-O1", "-o", bin, "testdata/emulate.cpp").CombinedOutput(); err != nil {
		t.Fatalf("compile emulator: %v\n%s", err, out)
	}
	seed := gpu.Seed{0: 0x11, 1: 0x22, 5: 0x77, 8: 0x99, 20: 0x5a, 31: 0xff}
	key, stream := seed.PhiloxKey()
	var tb bytes.Buffer
	fill := template(append(append([]byte(vramTag), seed[:]...), make([]byte, 8)...))
	lane := template(append(append(append([]byte(vramTag), seed[:]...), "lane"...), make([]byte, 8)...))
	for _, w := range append(fill, lane...) {
		_ = binary.Write(&tb, binary.LittleEndian, w)
	}
	tf, of := filepath.Join(dir, "tmpl.bin"), filepath.Join(dir, "out.bin")
	if err := os.WriteFile(tf, tb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	u := func(v uint32) string { return "0x" + hex32(v) }
	if out, err := exec.Command(bin, u(key[0]), u(key[1]), u(stream), tf, of).CombinedOutput(); err != nil {
		t.Fatalf("run emulator: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(of)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(raw)
	next := func(n int) []byte {
		b := make([]byte, n)
		if _, err := r.Read(b); err != nil {
			t.Fatalf("short emulator output: %v", err)
		}
		return b
	}

	// fill_int8_rows: 8 rows, k = 64.
	a := next(8 * 64)
	for i := 0; i < 8; i++ {
		for j := 0; j < 64; j++ {
			if got, want := int8(a[i*64+j]), gpu.Int8At(seed, gpu.MatrixA, i, j); got != want {
				t.Fatalf("fill_int8_rows A[%d][%d] = %d, want %d", i, j, got, want)
			}
		}
	}
	// fill_int8_bt: Bᵀ of B 64×32.
	bt := next(32 * 64)
	for j := 0; j < 32; j++ {
		for p := 0; p < 64; p++ {
			if got, want := int8(bt[j*64+p]), gpu.Int8At(seed, gpu.MatrixB, p, j); got != want {
				t.Fatalf("fill_int8_bt Bt[%d][%d] = %d, want %d", j, p, got, want)
			}
		}
	}
	ab := next(2 * 8 * 64)
	for i := 0; i < 8; i++ {
		for j := 0; j < 64; j++ {
			if got, want := binary.LittleEndian.Uint16(ab[2*(i*64+j):]), gpu.BF16Bits(seed, gpu.MatrixBF16A, i, j); got != want {
				t.Fatalf("fill_bf16_rows A[%d][%d] = %#x, want %#x", i, j, got, want)
			}
		}
	}
	bb := next(2 * 32 * 64)
	for j := 0; j < 32; j++ {
		for p := 0; p < 64; p++ {
			if got, want := binary.LittleEndian.Uint16(bb[2*(j*64+p):]), gpu.BF16Bits(seed, gpu.MatrixBF16B, p, j); got != want {
				t.Fatalf("fill_bf16_bt Bt[%d][%d] = %#x, want %#x", j, p, got, want)
			}
		}
	}
	// leaf_rows at m = 5, 13, 16, 17.
	for _, m := range []int{5, 13, 16, 17} {
		c := next(4 * 3 * m)
		leaves := next(4 * 3 * 8)
		for i := 0; i < 3; i++ {
			row, _ := gpu.DecodeInt32Row(c[4*i*m : 4*(i+1)*m])
			want := gpu.LeafHash(row)
			if got := beWords(leaves[32*i : 32*(i+1)]); got != want {
				t.Fatalf("leaf_rows m=%d row %d = %x, want %x", m, i, got, want)
			}
		}
	}
	// VRAM: 64 blocks of 5 rounds, 4 lanes of 7 reads.
	p := gpu.VRAMParams{Lanes: 4, Blocks: 16, Rounds: 5, Reads: 7}
	mem := next(64 * 32)
	for g := 0; g < 64; g++ {
		if got, want := beWords(mem[32*g:32*(g+1)]), gpu.VRAMBlock(seed, uint64(g), p.Rounds); got != want {
			t.Fatalf("vram_fill block %d = %x, want %x", g, got, want)
		}
	}
	outs, lvs := next(4*32), next(4*32)
	wantOut, wantLeaves, err := gpu.NewCPU().VRAM(t.Context(), seed, p)
	if err != nil {
		t.Fatal(err)
	}
	for l := 0; l < 4; l++ {
		if got := beWords(outs[32*l : 32*(l+1)]); got != wantOut[l] {
			t.Fatalf("vram_lanes output %d = %x, want %x", l, got, wantOut[l])
		}
		if got := beWords(lvs[32*l : 32*(l+1)]); got != wantLeaves[l] {
			t.Fatalf("vram_lanes leaf %d = %x, want %x", l, got, wantLeaves[l])
		}
	}
}

// beWords turns 8 little-endian-stored state words into the digest bytes.
func beWords(b []byte) [32]byte {
	var d [32]byte
	for j := 0; j < 8; j++ {
		binary.BigEndian.PutUint32(d[4*j:], binary.LittleEndian.Uint32(b[4*j:]))
	}
	return d
}

func hex32(v uint32) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[:])
}

//go:build amd64 && gc && !purego

package gpu

import "golang.org/x/sys/cpu"

// haveAVX512 reports whether the CPU (and the OS, which must save the
// AVX-512 state) supports AVX-512 F, which bf16Kernel needs; haveVNNI
// whether it also has AVX-512 VNNI, which int8Kernel needs. Go's GODEBUG
// turns either off (GODEBUG=cpu.avx512f=off, cpu.avx512vnni=off), and the
// portable kernels, with the same bits, run instead.
var (
	haveAVX512 = cpu.X86.HasAVX512F
	haveVNNI   = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI
)

// int8Kernel computes a 6×64 block of int32 dot products with VPDPBUSD:
// c[r·64+l] = Σ_{q<kq} Σ_{t<4} a[r·lda+4q+t] · b[q·256+64(l/16)+4(l%16)+t],
// a's bytes signed, b's unsigned (int8Product's packed panel), wrapping
// in int32. a holds six rows of lda ≥ 4·kq bytes; kq ≥ 1. Requires
// haveVNNI.
//
//go:noescape
func int8Kernel(a *int8, lda int, b *byte, kq int, c *int32)

// bf16Kernel computes a 6×64 block of float32 dot products, each
// accumulated in order of p with fused multiply-adds (exact products, so
// the bits of acc += a·b): c[r·64+l] = Σ_{p<k} a[r·lda+p] · b[64p+l]. a
// holds six rows of lda ≥ k floats; k ≥ 1. Requires haveAVX512.
//
//go:noescape
func bf16Kernel(a *float32, lda int, b *float32, k int, c *float32)

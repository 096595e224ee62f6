//go:build !amd64 || purego

package gpu

// haveAVX512 is false: int8Kernel exists only on amd64.
const haveAVX512 = false

// int8Kernel is never called without haveAVX512.
func int8Kernel(a *int8, lda int, b *byte, kq int, c *int32) {
	panic("gpu: int8Kernel without AVX-512 VNNI")
}

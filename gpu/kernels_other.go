//go:build !amd64 || purego

package gpu

// haveAVX512 is false: int8Kernel and bf16Kernel exist only on amd64.
const haveAVX512 = false

// int8Kernel is never called without haveAVX512.
func int8Kernel(a *int8, lda int, b *byte, kq int, c *int32) {
	panic("gpu: int8Kernel without AVX-512 VNNI")
}

// bf16Kernel is never called without haveAVX512.
func bf16Kernel(a *float32, lda int, b *float32, k int, c *float32) {
	panic("gpu: bf16Kernel without AVX-512")
}

//go:build !amd64 || !gc || purego

package gpu

// haveAVX512 and haveVNNI are false: int8Kernel and bf16Kernel exist only
// on amd64 with the gc toolchain.
const (
	haveAVX512 = false
	haveVNNI   = false
)

// int8Kernel is never called without haveVNNI.
func int8Kernel(a *int8, lda int, b *byte, kq int, c *int32) {
	panic("gpu: int8Kernel without AVX-512 VNNI")
}

// bf16Kernel is never called without haveAVX512.
func bf16Kernel(a *float32, lda int, b *float32, k int, c *float32) {
	panic("gpu: bf16Kernel without AVX-512")
}

//go:build linux && cgo

package cuda

/*
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

typedef int (*lt_create_t)(void**);
typedef int (*lt_destroy_t)(void*);
typedef int (*lt_desc_create_t)(void**, int, int);
typedef int (*lt_set_attr_t)(void*, int, const void*, size_t);
typedef int (*lt_layout_create_t)(void**, int, uint64_t, uint64_t, int64_t);
typedef int (*lt_pref_create_t)(void**);
typedef int (*lt_heuristic_t)(void*, void*, void*, void*, void*, void*, void*, int, void*, int*);
typedef int (*lt_matmul_t)(void*, void*, const void*, const void*, void*, const void*, void*, const void*,
                           const void*, void*, void*, void*, const void*, void*, size_t, void*);

static void* lt_lib;
static void* lt_handle;
static lt_destroy_t lt_desc_destroy, lt_layout_destroy, lt_pref_destroy;
static lt_desc_create_t lt_desc_create;
static lt_set_attr_t lt_desc_set, lt_pref_set;
static lt_layout_create_t lt_layout_create;
static lt_pref_create_t lt_pref_create;
static lt_heuristic_t lt_heuristic;
static lt_matmul_t lt_matmul;

// poai_lt_load opens cuBLASLt (path, or the usual sonames when path is
// empty) and creates a handle in the current context. 0 on success.
static int poai_lt_load(const char* path) {
	if (lt_handle) return 0;
	const char* names[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"};
	void* lib = NULL;
	if (path && path[0]) lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	for (int i = 0; !lib && !(path && path[0]) && i < 4; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!lib) return -1;
	lt_create_t create = (lt_create_t)dlsym(lib, "cublasLtCreate");
	lt_desc_create = (lt_desc_create_t)dlsym(lib, "cublasLtMatmulDescCreate");
	lt_desc_destroy = (lt_destroy_t)dlsym(lib, "cublasLtMatmulDescDestroy");
	lt_desc_set = (lt_set_attr_t)dlsym(lib, "cublasLtMatmulDescSetAttribute");
	lt_layout_create = (lt_layout_create_t)dlsym(lib, "cublasLtMatrixLayoutCreate");
	lt_layout_destroy = (lt_destroy_t)dlsym(lib, "cublasLtMatrixLayoutDestroy");
	lt_pref_create = (lt_pref_create_t)dlsym(lib, "cublasLtMatmulPreferenceCreate");
	lt_pref_destroy = (lt_destroy_t)dlsym(lib, "cublasLtMatmulPreferenceDestroy");
	lt_pref_set = (lt_set_attr_t)dlsym(lib, "cublasLtMatmulPreferenceSetAttribute");
	lt_heuristic = (lt_heuristic_t)dlsym(lib, "cublasLtMatmulAlgoGetHeuristic");
	lt_matmul = (lt_matmul_t)dlsym(lib, "cublasLtMatmul");
	if (!create || !lt_desc_create || !lt_desc_destroy || !lt_desc_set || !lt_layout_create || !lt_layout_destroy ||
	    !lt_pref_create || !lt_pref_destroy || !lt_pref_set || !lt_heuristic || !lt_matmul) {
		dlclose(lib);
		return -2;
	}
	void* h = NULL;
	int st = create(&h);
	if (st != 0) { dlclose(lib); return 1000 + st; }
	lt_lib = lib;
	lt_handle = h;
	return 0;
}

// poai_lt_matmul computes D (rows×m row-major) = A (rows×k row-major) ·
// B, with B given as Bt (m×k row-major). In cuBLASLt's column-major terms
// D is m×rows, Bt is k×m (transposed: op = T) and A is k×rows (op = N):
// the "TN" layout that int8 tensor-core kernels require. bf16 selects bf16 inputs, fp32 accumulate and output; else int8
// inputs with int32 accumulate and output. 0 on success, else a cuBLAS
// status (or -1 when no algorithm fits).
static int poai_lt_matmul(int bf16, uint64_t btp, uint64_t ap, uint64_t dp, uint64_t rows, uint64_t k, uint64_t m,
                          uint64_t wsp, size_t wsSize) {
	const void* bt = (const void*)(uintptr_t)btp;
	const void* a = (const void*)(uintptr_t)ap;
	void* d = (void*)(uintptr_t)dp;
	void* ws = (void*)(uintptr_t)wsp;
	const int R_32F = 0, R_8I = 3, R_32I = 10, R_16BF = 14;
	const int COMPUTE_32F = 68, COMPUTE_32I = 72;
	int inType = bf16 ? R_16BF : R_8I, outType = bf16 ? R_32F : R_32I;
	int compute = bf16 ? COMPUTE_32F : COMPUTE_32I, scale = bf16 ? R_32F : R_32I;
	void *desc = NULL, *la = NULL, *lb = NULL, *ld = NULL, *pref = NULL;
	int st = lt_desc_create(&desc, compute, scale);
	if (st) return st;
	int opT = 1, opN = 0;
	lt_desc_set(desc, 3, &opT, sizeof(opT));  // TRANSA
	lt_desc_set(desc, 4, &opN, sizeof(opN));  // TRANSB
	if ((st = lt_layout_create(&la, inType, k, m, k))) goto out;
	if ((st = lt_layout_create(&lb, inType, k, rows, k))) goto out;
	if ((st = lt_layout_create(&ld, outType, m, rows, m))) goto out;
	if ((st = lt_pref_create(&pref))) goto out;
	uint64_t wsz = wsSize;
	lt_pref_set(pref, 1, &wsz, sizeof(wsz));  // MAX_WORKSPACE_BYTES
	char results[96 * 4];
	int returned = 0;
	st = lt_heuristic(lt_handle, desc, la, lb, ld, ld, pref, 4, results, &returned);
	if (st) goto out;
	if (returned == 0) { st = -1; goto out; }
	float f1 = 1, f0 = 0;
	int i1 = 1, i0 = 0;
	const void* alpha = bf16 ? (const void*)&f1 : (const void*)&i1;
	const void* beta = bf16 ? (const void*)&f0 : (const void*)&i0;
	st = lt_matmul(lt_handle, desc, alpha, bt, la, a, lb, beta, d, ld, d, ld, results, ws, wsSize, NULL);
out:
	if (pref) lt_pref_destroy(pref);
	if (ld) lt_layout_destroy(ld);
	if (lb) lt_layout_destroy(lb);
	if (la) lt_layout_destroy(la);
	lt_desc_destroy(desc);
	return st;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// loadCublasLt opens cuBLASLt (path, or libcublasLt.so.{13,12,11} on the
// loader path) and creates its handle in the current context.
func loadCublasLt(path string) error {
	loadMu.Lock()
	defer loadMu.Unlock()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	switch st := C.poai_lt_load(cpath); {
	case st == 0:
		return nil
	case st == -1:
		return fmt.Errorf("cuBLASLt not found (%q or libcublasLt.so.{13,12,11})", path)
	case st == -2:
		return fmt.Errorf("cuBLASLt lacks an entry point poai uses")
	default:
		return fmt.Errorf("cublasLtCreate: status %d", int(st)-1000)
	}
}

// ltMatMul runs C = A·B through cuBLASLt (see poai_lt_matmul).
func ltMatMul(bf16 bool, bt, a, c devPtr, rows, k, m uint64, ws devPtr, wsSize uint64) error {
	b := C.int(0)
	if bf16 {
		b = 1
	}
	st := C.poai_lt_matmul(b, C.uint64_t(bt), C.uint64_t(a), C.uint64_t(c),
		C.uint64_t(rows), C.uint64_t(k), C.uint64_t(m), C.uint64_t(ws), C.size_t(wsSize))
	if st != 0 {
		return fmt.Errorf("cublasLtMatmul %dx%dx%d: status %d", rows, k, m, int(st))
	}
	return nil
}

//go:build linux && cgo

package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef void* CUcontext;
typedef void* CUmodule;
typedef void* CUfunction;
typedef void* CUstream;
typedef void* CUevent;
typedef unsigned long long CUdeviceptr;

static void* cu_lib;
static CUresult (*p_cuInit)(unsigned int);
static CUresult (*p_cuDriverGetVersion)(int*);
static CUresult (*p_cuDeviceGetCount)(int*);
static CUresult (*p_cuDeviceGet)(CUdevice*, int);
static CUresult (*p_cuDeviceGetName)(char*, int, CUdevice);
static CUresult (*p_cuDeviceTotalMem)(size_t*, CUdevice);
static CUresult (*p_cuDeviceGetAttribute)(int*, int, CUdevice);
static CUresult (*p_cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
static CUresult (*p_cuDevicePrimaryCtxRelease)(CUdevice);
static CUresult (*p_cuCtxSetCurrent)(CUcontext);
static CUresult (*p_cuCtxSynchronize)(void);
static CUresult (*p_cuMemGetInfo)(size_t*, size_t*);
static CUresult (*p_cuMemAlloc)(CUdeviceptr*, size_t);
static CUresult (*p_cuMemFree)(CUdeviceptr);
static CUresult (*p_cuMemcpyHtoD)(CUdeviceptr, const void*, size_t);
static CUresult (*p_cuMemcpyDtoH)(void*, CUdeviceptr, size_t);
static CUresult (*p_cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
static CUresult (*p_cuModuleLoadData)(CUmodule*, const void*);
static CUresult (*p_cuModuleUnload)(CUmodule);
static CUresult (*p_cuModuleGetFunction)(CUfunction*, CUmodule, const char*);
static CUresult (*p_cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                                    unsigned, CUstream, void**, void**);
static CUresult (*p_cuGetErrorString)(CUresult, const char**);
static CUresult (*p_cuEventCreate)(CUevent*, unsigned);
static CUresult (*p_cuEventRecord)(CUevent, CUstream);
static CUresult (*p_cuEventSynchronize)(CUevent);
static CUresult (*p_cuEventElapsedTime)(float*, CUevent, CUevent);
static CUresult (*p_cuEventDestroy)(CUevent);

#define SYM(p, name) do { *(void**)(&p) = dlsym(cu_lib, name); if (!p) return name; } while (0)

// poai_cu_load opens libcuda.so.1 and resolves the entry points poai uses.
// It returns NULL on success, else the name of what is missing.
static const char* poai_cu_load_syms(void);
static const char* poai_cu_load(void) {
	if (cu_lib) return NULL;
	void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib) return "libcuda.so.1";
	cu_lib = lib;
	const char* missing = poai_cu_load_syms();
	if (missing) {
		// Leave nothing half-loaded: the next call tries again and fails
		// the same way instead of calling a NULL entry point.
		cu_lib = NULL;
		dlclose(lib);
	}
	return missing;
}

static const char* poai_cu_load_syms(void) {
	SYM(p_cuInit, "cuInit");
	SYM(p_cuDriverGetVersion, "cuDriverGetVersion");
	SYM(p_cuDeviceGetCount, "cuDeviceGetCount");
	SYM(p_cuDeviceGet, "cuDeviceGet");
	SYM(p_cuDeviceGetName, "cuDeviceGetName");
	SYM(p_cuDeviceTotalMem, "cuDeviceTotalMem_v2");
	SYM(p_cuDeviceGetAttribute, "cuDeviceGetAttribute");
	SYM(p_cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
	SYM(p_cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
	SYM(p_cuCtxSetCurrent, "cuCtxSetCurrent");
	SYM(p_cuCtxSynchronize, "cuCtxSynchronize");
	SYM(p_cuMemGetInfo, "cuMemGetInfo_v2");
	SYM(p_cuMemAlloc, "cuMemAlloc_v2");
	SYM(p_cuMemFree, "cuMemFree_v2");
	SYM(p_cuMemcpyHtoD, "cuMemcpyHtoD_v2");
	SYM(p_cuMemcpyDtoH, "cuMemcpyDtoH_v2");
	SYM(p_cuMemcpyDtoD, "cuMemcpyDtoD_v2");
	SYM(p_cuModuleLoadData, "cuModuleLoadData");
	SYM(p_cuModuleUnload, "cuModuleUnload");
	SYM(p_cuModuleGetFunction, "cuModuleGetFunction");
	SYM(p_cuLaunchKernel, "cuLaunchKernel");
	SYM(p_cuGetErrorString, "cuGetErrorString");
	SYM(p_cuEventCreate, "cuEventCreate");
	SYM(p_cuEventRecord, "cuEventRecord");
	SYM(p_cuEventSynchronize, "cuEventSynchronize");
	SYM(p_cuEventElapsedTime, "cuEventElapsedTime");
	SYM(p_cuEventDestroy, "cuEventDestroy_v2");
	return NULL;
}

static const char* poai_cu_error(CUresult r) {
	const char* s = NULL;
	if (p_cuGetErrorString && p_cuGetErrorString(r, &s) == 0 && s) return s;
	return "unknown CUDA error";
}

static CUresult poai_cuInit(void) { return p_cuInit(0); }
static CUresult poai_cuDriverGetVersion(int* v) { return p_cuDriverGetVersion(v); }
static CUresult poai_cuDeviceGetCount(int* n) { return p_cuDeviceGetCount(n); }
static CUresult poai_cuDeviceGet(CUdevice* d, int i) { return p_cuDeviceGet(d, i); }
static CUresult poai_cuDeviceGetName(char* s, int n, CUdevice d) { return p_cuDeviceGetName(s, n, d); }
static CUresult poai_cuDeviceTotalMem(size_t* b, CUdevice d) { return p_cuDeviceTotalMem(b, d); }
static CUresult poai_cuDeviceGetAttribute(int* v, int a, CUdevice d) { return p_cuDeviceGetAttribute(v, a, d); }
static CUresult poai_cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice d) { return p_cuDevicePrimaryCtxRetain(c, d); }
static CUresult poai_cuDevicePrimaryCtxRelease(CUdevice d) { return p_cuDevicePrimaryCtxRelease(d); }
static CUresult poai_cuCtxSetCurrent(CUcontext c) { return p_cuCtxSetCurrent(c); }
static CUresult poai_cuCtxSynchronize(void) { return p_cuCtxSynchronize(); }
static CUresult poai_cuMemGetInfo(size_t* f, size_t* t) { return p_cuMemGetInfo(f, t); }
static CUresult poai_cuMemAlloc(CUdeviceptr* p, size_t n) { return p_cuMemAlloc(p, n); }
static CUresult poai_cuMemFree(CUdeviceptr p) { return p_cuMemFree(p); }
static CUresult poai_cuMemcpyHtoD(CUdeviceptr d, const void* s, size_t n) { return p_cuMemcpyHtoD(d, s, n); }
static CUresult poai_cuMemcpyDtoH(void* d, CUdeviceptr s, size_t n) { return p_cuMemcpyDtoH(d, s, n); }
static CUresult poai_cuMemcpyDtoD(CUdeviceptr d, CUdeviceptr s, size_t n) { return p_cuMemcpyDtoD(d, s, n); }
static CUresult poai_cuModuleLoadData(CUmodule* m, const void* img) { return p_cuModuleLoadData(m, img); }
static CUresult poai_cuModuleUnload(CUmodule m) { return p_cuModuleUnload(m); }
static CUresult poai_cuModuleGetFunction(CUfunction* f, CUmodule m, const char* n) { return p_cuModuleGetFunction(f, m, n); }
static CUresult poai_cuEventCreate(CUevent* e) { return p_cuEventCreate(e, 0); }
static CUresult poai_cuEventRecord(CUevent e) { return p_cuEventRecord(e, 0); }
static CUresult poai_cuEventSynchronize(CUevent e) { return p_cuEventSynchronize(e); }
static CUresult poai_cuEventElapsedTime(float* ms, CUevent a, CUevent b) { return p_cuEventElapsedTime(ms, a, b); }
static CUresult poai_cuEventDestroy(CUevent e) { return p_cuEventDestroy(e); }

// poai_launch launches f on the default stream with nargs parameters, each
// stored in its own 8-byte slot of args except the last, which may be
// larger (lastSize bytes, copied by the driver).
static CUresult poai_launch(CUfunction f, unsigned gx, unsigned gy, unsigned bx, unsigned shmem,
                            void* args, int nargs, int lastSize) {
	void* params[16];
	if (nargs > 16) return 1;
	for (int i = 0; i < nargs; i++) params[i] = (char*)args + 8 * i;
	(void)lastSize;
	return p_cuLaunchKernel(f, gx, gy, 1, bx, 1, 1, shmem, NULL, params, NULL);
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// Driver-API constants (cuda.h, CUDA 12).
const (
	attrComputeCapabilityMajor = 75
	attrComputeCapabilityMinor = 76
	attrMultiprocessorCount    = 16
	attrPCIBusID               = 33
	attrPCIDeviceID            = 34
	attrPCIDomainID            = 50
)

// cuError is a CUDA driver error code with the driver's description.
type cuError struct {
	op   string
	code int
	msg  string
}

func (e *cuError) Error() string { return fmt.Sprintf("cuda: %s: %s (error %d)", e.op, e.msg, e.code) }

func check(op string, r C.CUresult) error {
	if r == 0 {
		return nil
	}
	return &cuError{op: op, code: int(r), msg: C.GoString(C.poai_cu_error(r))}
}

// loadMu serializes loading the driver (the C loader keeps global state).
var loadMu sync.Mutex

// loadDriver opens libcuda.so.1 and initialises the driver. The error wraps
// ErrNoDriver when the library or the driver is missing.
func loadDriver() error {
	loadMu.Lock()
	defer loadMu.Unlock()
	if missing := C.poai_cu_load(); missing != nil {
		return fmt.Errorf("%w: %s not found", ErrNoDriver, C.GoString(missing))
	}
	if err := check("cuInit", C.poai_cuInit()); err != nil {
		return fmt.Errorf("%w: %v", ErrNoDriver, err)
	}
	return nil
}

func driverVersion() int {
	var v C.int
	if C.poai_cuDriverGetVersion(&v) != 0 {
		return 0
	}
	return int(v)
}

func deviceCount() (int, error) {
	var n C.int
	err := check("cuDeviceGetCount", C.poai_cuDeviceGetCount(&n))
	return int(n), err
}

// devHandle is an opened device: its primary context and attributes.
type devHandle struct {
	dev    C.CUdevice
	ctx    C.CUcontext
	name   string
	total  uint64
	major  int
	minor  int
	sms    int
	pci    [3]int // domain, bus, device
	module C.CUmodule
}

func openDevice(ordinal int, ptx []byte) (*devHandle, error) {
	h := &devHandle{}
	if err := check("cuDeviceGet", C.poai_cuDeviceGet(&h.dev, C.int(ordinal))); err != nil {
		return nil, err
	}
	var name [256]C.char
	if err := check("cuDeviceGetName", C.poai_cuDeviceGetName(&name[0], 256, h.dev)); err != nil {
		return nil, err
	}
	h.name = C.GoString(&name[0])
	var total C.size_t
	if err := check("cuDeviceTotalMem", C.poai_cuDeviceTotalMem(&total, h.dev)); err != nil {
		return nil, err
	}
	h.total = uint64(total)
	for _, a := range []struct {
		attr int
		dst  *int
	}{{attrComputeCapabilityMajor, &h.major}, {attrComputeCapabilityMinor, &h.minor}, {attrMultiprocessorCount, &h.sms},
		{attrPCIDomainID, &h.pci[0]}, {attrPCIBusID, &h.pci[1]}, {attrPCIDeviceID, &h.pci[2]}} {
		var v C.int
		if err := check("cuDeviceGetAttribute", C.poai_cuDeviceGetAttribute(&v, C.int(a.attr), h.dev)); err != nil {
			return nil, err
		}
		*a.dst = int(v)
	}
	if err := check("cuDevicePrimaryCtxRetain", C.poai_cuDevicePrimaryCtxRetain(&h.ctx, h.dev)); err != nil {
		return nil, err
	}
	if err := h.bind(); err != nil {
		h.release()
		return nil, err
	}
	img := C.CBytes(append(append([]byte{}, ptx...), 0))
	defer C.free(img)
	if err := check("cuModuleLoadData (JIT of the embedded PTX)", C.poai_cuModuleLoadData(&h.module, img)); err != nil {
		h.release()
		return nil, err
	}
	return h, nil
}

// bind makes the device's context current on the calling OS thread; the
// caller must hold runtime.LockOSThread.
func (h *devHandle) bind() error { return check("cuCtxSetCurrent", C.poai_cuCtxSetCurrent(h.ctx)) }

func (h *devHandle) release() {
	if h.module != nil {
		C.poai_cuModuleUnload(h.module)
		h.module = nil
	}
	C.poai_cuDevicePrimaryCtxRelease(h.dev)
}

func (h *devHandle) memInfo() (free, total uint64, err error) {
	var f, t C.size_t
	err = check("cuMemGetInfo", C.poai_cuMemGetInfo(&f, &t))
	return uint64(f), uint64(t), err
}

type kernel struct {
	name string
	fn   C.CUfunction
}

func (h *devHandle) kernel(name string) (kernel, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var fn C.CUfunction
	if err := check("cuModuleGetFunction "+name, C.poai_cuModuleGetFunction(&fn, h.module, cname)); err != nil {
		return kernel{}, err
	}
	return kernel{name: name, fn: fn}, nil
}

// devPtr is a device address.
type devPtr uint64

func alloc(n uint64) (devPtr, error) {
	var p C.CUdeviceptr
	if err := check(fmt.Sprintf("cuMemAlloc(%d bytes)", n), C.poai_cuMemAlloc(&p, C.size_t(n))); err != nil {
		return 0, err
	}
	return devPtr(p), nil
}

func free(p devPtr) {
	if p != 0 {
		C.poai_cuMemFree(C.CUdeviceptr(p))
	}
}

func copyToDevice(dst devPtr, src unsafe.Pointer, n uint64) error {
	return check("cuMemcpyHtoD", C.poai_cuMemcpyHtoD(C.CUdeviceptr(dst), src, C.size_t(n)))
}

func copyToHost(dst unsafe.Pointer, src devPtr, n uint64) error {
	return check("cuMemcpyDtoH", C.poai_cuMemcpyDtoH(dst, C.CUdeviceptr(src), C.size_t(n)))
}

func copyDevice(dst, src devPtr, n uint64) error {
	return check("cuMemcpyDtoD", C.poai_cuMemcpyDtoD(C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(n)))
}

func synchronize() error { return check("cuCtxSynchronize", C.poai_cuCtxSynchronize()) }

// launch runs k on a gx×gy grid of bx-thread blocks. args are the kernel's
// parameters in order, each packed into an 8-byte slot; a final struct
// parameter may span several slots (tail).
func launch(k kernel, gx, gy, bx uint32, args []uint64, tail []uint32) error {
	buf := make([]byte, 8*len(args)+4*len(tail)+8)
	for i, a := range args {
		*(*uint64)(unsafe.Pointer(&buf[8*i])) = a
	}
	n := len(args)
	if len(tail) > 0 {
		for i, w := range tail {
			*(*uint32)(unsafe.Pointer(&buf[8*len(args)+4*i])) = w
		}
		n++
	}
	cbuf := C.CBytes(buf)
	defer C.free(cbuf)
	if err := check("cuLaunchKernel "+k.name, C.poai_launch(k.fn, C.uint(gx), C.uint(gy), C.uint(bx), 0, cbuf, C.int(n), C.int(4*len(tail)))); err != nil {
		return err
	}
	return nil
}

// timer brackets device work with CUDA events.
type timer struct{ start, stop C.CUevent }

func newTimer() (*timer, error) {
	t := &timer{}
	if err := check("cuEventCreate", C.poai_cuEventCreate(&t.start)); err != nil {
		return nil, err
	}
	if err := check("cuEventCreate", C.poai_cuEventCreate(&t.stop)); err != nil {
		C.poai_cuEventDestroy(t.start)
		return nil, err
	}
	return t, nil
}

func (t *timer) begin() error { return check("cuEventRecord", C.poai_cuEventRecord(t.start)) }

// end records the stop event, waits for it and returns the milliseconds
// between the two events.
func (t *timer) end() (float64, error) {
	if err := check("cuEventRecord", C.poai_cuEventRecord(t.stop)); err != nil {
		return 0, err
	}
	if err := check("cuEventSynchronize", C.poai_cuEventSynchronize(t.stop)); err != nil {
		return 0, err
	}
	var ms C.float
	err := check("cuEventElapsedTime", C.poai_cuEventElapsedTime(&ms, t.start, t.stop))
	return float64(ms), err
}

func (t *timer) close() {
	C.poai_cuEventDestroy(t.start)
	C.poai_cuEventDestroy(t.stop)
}

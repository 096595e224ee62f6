package check_test

import (
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runCheck runs gpu-check.sh from the repository root with stub binaries
// and stub nvidia-smi and python3 on PATH, each exiting with the status
// given in codes (0 when absent); it returns the output and exit status.
func runCheck(t *testing.T, codes map[string]int) (string, int) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	stub := func(name string) string {
		return fmt.Sprintf("#!/bin/sh\necho stub %s\nexit %d\n", name, codes[name])
	}
	bin, path := t.TempDir(), t.TempDir()
	for _, name := range []string{"cuda.test", "nvml.test", "challenge.test", "poai"} {
		f, err := os.Create(filepath.Join(bin, name+".gz"))
		if err != nil {
			t.Fatal(err)
		}
		z := gzip.NewWriter(f)
		z.Write([]byte(stub(name)))
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	for _, name := range []string{"nvidia-smi", "python3"} {
		if err := os.WriteFile(filepath.Join(path, name), []byte(stub(name)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bash, "gpu/cuda/check/gpu-check.sh", bin)
	cmd.Dir = filepath.Join("..", "..", "..")
	cmd.Env = append(os.Environ(), "PATH="+path+string(os.PathListSeparator)+os.Getenv("PATH"), "OUT="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// TestGPUCheckExitStatus: the script exits 0 only when every step passed,
// and otherwise with the worst step's status, listing the failed steps.
func TestGPUCheckExitStatus(t *testing.T) {
	out, rc := runCheck(t, nil)
	if rc != 0 || !strings.Contains(out, "every step passed") {
		t.Fatalf("all steps passing: exit %d\n%s", rc, out)
	}
	out, rc = runCheck(t, map[string]int{"poai": 3})
	if rc != 3 || !strings.Contains(out, "FAILED: poai bench (exit 3)") || !strings.Contains(out, "FAILED: devnet (exit 3)") {
		t.Fatalf("poai failing: exit %d\n%s", rc, out)
	}
	out, rc = runCheck(t, map[string]int{"nvidia-smi": 9, "cuda.test": 1, "nvml.test": 1, "challenge.test": 4, "python3": 2, "poai": 1})
	if rc != 9 {
		t.Fatalf("every step failing: exit %d, want 9 (the worst)\n%s", rc, out)
	}
	for _, step := range []string{"device (nvidia-smi) (exit 9)", "CUDA tests (exit 1)", "protocol on CUDA (exit 4)", "NVML (exit 1)", "cuBLAS reference (exit 2)", "ratios (exit 2)", "devnet report (exit 2)"} {
		if !strings.Contains(out, "FAILED: "+step) {
			t.Errorf("failed step %q not listed\n%s", step, out)
		}
	}
}

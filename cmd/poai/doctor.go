package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/poai-network/poai/challenge"
	"github.com/poai-network/poai/gpu"
	"github.com/poai-network/poai/gpu/cuda"
	"github.com/poai-network/poai/gpu/nvml"
	"github.com/poai-network/poai/node"
	"github.com/poai-network/poai/p2p"
)

// Outcomes of a doctor check.
const (
	checkOK   = "ok"
	checkWarn = "warn"
	checkFail = "fail"
	checkSkip = "skip"
)

// doctorCheck is one preflight finding.
type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, warn, fail or skip
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

func doctorCmd() *cobra.Command {
	var (
		rf      runFlags
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check, before 'poai run', everything the node needs: config, identity, disk, ports, clock, GPU",
		Long: `doctor runs the checks 'poai run' would fail on, and a few it cannot see, on
the same data directory, environment and flags as run, without starting a
node or touching the network:

  config      config.toml, POAI_* variables and flags, validated
  identity    identity.key present, not readable by others
  disk        free space on the data directory (run stops under 256 MiB)
  p2p ports   every fixed [p2p] listen port free (not held by Kubo or a
              second poai)
  http        the API and metrics addresses free
  clock       the kernel's clock synchronized, its error bound within the
              protocol's timestamp limit (±2 min)
  cpu         the CPU product kernels this machine runs
  cuda        the CUDA driver and devices ([device] backend cuda needs one)
  nvml        NVML's device reports (signed into the claim)
  cublaslt    libcublasLt for the GEMMs (optional)

Each finding says ok, warn, fail or skip, with a fix. The exit status is 1
when any check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			checks := runDoctor(cmd, &rf)
			failed := 0
			for _, c := range checks {
				if c.Status == checkFail {
					failed++
				}
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(checks); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				for _, c := range checks {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, c.Detail)
					if c.Fix != "" {
						fmt.Fprintf(tw, "\t\t→ %s\n", c.Fix)
					}
				}
				tw.Flush()
			}
			if failed > 0 {
				return fmt.Errorf("doctor: %d of %d checks failed", failed, len(checks))
			}
			return nil
		},
	}
	rf.register(cmd.Flags())
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the checks as JSON")
	return cmd
}

// runDoctor runs every check; a failed config check stops the ones that
// need it.
func runDoctor(cmd *cobra.Command, rf *runFlags) []doctorCheck {
	var out []doctorCheck
	add := func(name, status, detail, fix string) {
		out = append(out, doctorCheck{Name: name, Status: status, Detail: detail, Fix: fix})
	}
	cfg, dir, cfgPath, err := rf.load(cmd)
	if err != nil {
		add("config", checkFail, err.Error(), "fix the file, variable or flag named (poai config show prints what run would use)")
		return out
	}
	add("config", checkOK, cfgPath, "")
	keyPath := filepath.Join(dir, node.KeyFile)
	warnings, err := node.CheckDataDir(dir, cfgPath)
	if err == nil {
		_, err = p2p.LoadOrCreateKey(keyPath) // the file is there (CheckDataDir): this decodes and test-signs it
	}
	if err != nil {
		add("identity", checkFail, err.Error(), "restore identity.key from a backup; or move it away and run 'poai init' for a new identity (a new peer ID)")
	} else if len(warnings) > 0 {
		for _, w := range warnings {
			add("identity", checkWarn, w, "chmod the files named to 0600 and the directory to 0700")
		}
	} else {
		add("identity", checkOK, "identity.key present, private, signs and verifies", "")
	}
	switch free, err := node.FreeBytes(dir); {
	case errors.Is(err, errors.ErrUnsupported):
		add("disk", checkSkip, "free space is not measured on this system", "")
	case err != nil:
		add("disk", checkFail, err.Error(), "")
	case free < node.MinFreeBytes:
		add("disk", checkFail, fmt.Sprintf("%d MiB free, run refuses under %d MiB", free>>20, node.MinFreeBytes>>20), "free space on the data directory's filesystem")
	case free < 4*node.MinFreeBytes:
		add("disk", checkWarn, fmt.Sprintf("%d MiB free, run stops under %d MiB", free>>20, node.MinFreeBytes>>20), "free space on the data directory's filesystem")
	default:
		add("disk", checkOK, fmt.Sprintf("%d MiB free", free>>20), "")
	}
	if err := p2p.CheckPortsFree(cfg.P2P.Listen); err != nil {
		add("p2p ports", checkFail, err.Error(), "stop the other process, or change [p2p] listen")
	} else {
		add("p2p ports", checkOK, fmt.Sprintf("%v free", cfg.P2P.Listen), "")
	}
	for _, h := range []struct{ what, addr string }{{"api", cfg.API.Listen}, {"metrics", cfg.Metrics.Listen}} {
		if h.addr == "" || (h.what == "metrics" && h.addr == cfg.API.Listen) {
			continue
		}
		l, err := net.Listen("tcp", h.addr)
		if err != nil {
			add("http", checkFail, fmt.Sprintf("%s address %s: %v", h.what, h.addr, err), "stop the other process, or change ["+h.what+"] listen")
			continue
		}
		l.Close()
		add("http", checkOK, fmt.Sprintf("%s address %s free", h.what, h.addr), "")
	}
	out = append(out, clockCheck(challenge.DefaultLimits().MaxSkew))
	i8, b16 := gpu.NewCPU().Kernels()
	cpuStatus, cpuFix := checkOK, ""
	if i8 == "portable" {
		cpuStatus, cpuFix = checkWarn, "a CPU with AVX-512 VNNI proves int8 tens of times faster (GODEBUG=cpu.avx512vnni=off turns it off)"
	}
	add("cpu", cpuStatus, fmt.Sprintf("int8 product kernel %s, bf16 %s", i8, b16), cpuFix)
	count, cerr := cuda.Count()
	switch {
	case cerr != nil && cfg.Device.Backend == "cuda":
		add("cuda", checkFail, cerr.Error(), "install the NVIDIA driver, or set [device] backend to auto or cpu")
	case cerr != nil:
		add("cuda", checkSkip, cerr.Error()+" (this node proves on the CPU)", "")
	case cfg.Device.GPU >= count:
		add("cuda", checkFail, fmt.Sprintf("[device] gpu is %d but the driver sees %d devices", cfg.Device.GPU, count), "set [device] gpu to a device ordinal below the count")
	default:
		add("cuda", checkOK, fmt.Sprintf("%d devices", count), "")
	}
	if reports, err := nvml.Reports(); err != nil {
		if cerr == nil { // a GPU node's claim would carry no device report
			add("nvml", checkWarn, err.Error(), "install the driver's libnvidia-ml.so.1 so the claim carries the device's own report")
		} else {
			add("nvml", checkSkip, err.Error(), "")
		}
	} else {
		add("nvml", checkOK, fmt.Sprintf("%d device reports", len(reports)), "")
	}
	if cerr != nil || cfg.Device.CublasLt == "off" {
		add("cublaslt", checkSkip, "no CUDA device, or [device] cublaslt is off", "")
	} else if b, err := cuda.Open(cuda.Options{Ordinal: cfg.Device.GPU, CublasLt: cfg.Device.CublasLt}); err != nil {
		add("cublaslt", checkFail, err.Error(), "check the driver and [device] gpu")
	} else {
		d := b.Device()
		b.Close()
		if d.CublasLt {
			add("cublaslt", checkOK, "GEMMs run through cuBLASLt on "+d.Name, "")
		} else {
			add("cublaslt", checkWarn, "embedded kernels only: "+d.CublasLtError, "install libcublasLt (CUDA 12 or 13) or set [device] cublaslt to its path")
		}
	}
	return out
}

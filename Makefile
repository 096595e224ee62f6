# Targets mirror .ci/run.
GO ?= go
# go-nvml (NVIDIA's binding) calls NVML functions its header marks
# deprecated; the C compiler's warnings about them, printed once when the
# binding is first built, are not poai's.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations
RACE_PKGS = ./challenge/... ./scoring/... ./p2p/... ./node/...

.PHONY: build test race lint proto fuzz bench devnet ptx gpu-check-bins

build:
	$(GO) build -ldflags "-X main.gitCommit=$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$$(git diff --quiet 2>/dev/null || echo +dirty)" -o bin/poai ./cmd/poai

test:
	$(GO) test -p 1 -timeout 30m ./...

race:
	$(GO) test -race -short $(RACE_PKGS)

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l .; echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

proto:
	$(GO) generate ./challenge/pb
	git diff --exit-code -- challenge/pb

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzValidators -fuzztime 10s -fuzzminimizetime 2s ./challenge/
	$(GO) test -run '^$$' -fuzz FuzzVerify -fuzztime 10s -fuzzminimizetime 2s ./challenge/
	$(GO) test -run '^$$' -fuzz FuzzVerify -fuzztime 10s -fuzzminimizetime 2s ./challenge/merkle/

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./gpu/ ./challenge/... ./scoring/

devnet:
	$(GO) run ./cmd/poai devnet

# CUDA kernels to PTX (needs nvcc; see gpu/cuda/doc.go).
ptx:
	go generate ./gpu/cuda

# Binaries for gpu/cuda/check/gpu-check.sh on a GPU machine without Go.
gpu-check-bins:
	mkdir -p .devbin
	go build -ldflags "-s -w" -o .devbin/poai ./cmd/poai
	go test -c -ldflags "-s -w" -o .devbin/cuda.test ./gpu/cuda
	go test -c -ldflags "-s -w" -o .devbin/nvml.test ./gpu/nvml
	go test -c -ldflags "-s -w" -o .devbin/challenge.test ./challenge
	gzip -9f .devbin/poai .devbin/cuda.test .devbin/nvml.test .devbin/challenge.test

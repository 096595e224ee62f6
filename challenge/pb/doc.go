// Package pb holds poai's generated protobuf wire messages. Regenerate with
// `go generate ./challenge/pb` (needs protoc and protoc-gen-go v1.36.12).
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative poai.proto

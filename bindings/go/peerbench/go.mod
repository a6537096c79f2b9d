// The peer benchmarks: libresilience's Go binding beside the Go libraries
// Debian packages (golang-golang-x-time-dev, golang-github-hashicorp-golang-lru-dev,
// golang-github-dgraph-io-ristretto-dev). A module of its own so the binding's
// module keeps no third-party dependency.
//
// Run in GOPATH mode (GO111MODULE=off, GOPATH=<tree>:/usr/share/gocode):
// Debian's copies are not usable as modules (go-farm has no go.mod, and
// cespare/xxhash holds v2 under the v1 path). scripts/test-go smoke-runs it;
// bench.sh runs it for real.
module github.com/libresilience/libresilience/bindings/go/peerbench

go 1.19

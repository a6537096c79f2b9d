#!/usr/bin/env bash
# Runs the Go benchmarks (the binding's own and the peer comparisons) and
# prints the median ns/op of each over COUNT runs, with the load average.
# Needs the library built (cargo build --release -p resilience-ffi) and the
# Debian packages scripts/test-go installs.
#
#   bindings/go/peerbench/bench.sh              all benchmarks, 5 runs of 1s
#   COUNT=3 BENCHTIME=300ms bench.sh 'Cache'    a subset
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
FILTER=${1:-.}
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-1s}
export GOCACHE=$ROOT/target/go/cache GOTOOLCHAIN=local GOPROXY=off
# Go's build cache does not notice a rebuilt libresilience.a behind #cgo
# LDFLAGS; a define carrying the library's hash makes it relink when the
# library changes (CGO_CFLAGS is part of the cache key).
export CGO_CFLAGS="-O2 -g -DRSL_LIB_HASH=$(cksum < "$ROOT/target/release/libresilience.a" | cut -d' ' -f1)"
GOPATH_TREE=$ROOT/target/go/gopath
mkdir -p "$GOPATH_TREE/src/github.com/libresilience"
ln -sfn "$ROOT" "$GOPATH_TREE/src/github.com/libresilience/libresilience"
OUT=$ROOT/target/go/bench.txt
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd bindings/go && GOPATH=$ROOT/target/go/path GOFLAGS=-mod=mod \
    go test -run '^$' -bench "$FILTER" -benchmem -count "$COUNT" -benchtime "$BENCHTIME" .) > "$OUT"
(cd "$GOPATH_TREE/src/github.com/libresilience/libresilience/bindings/go/peerbench" && \
    GO111MODULE=off GOFLAGS= GOPATH=$GOPATH_TREE:/usr/share/gocode \
    go test -run '^$' -bench "$FILTER" -benchmem -count "$COUNT" -benchtime "$BENCHTIME" .) >> "$OUT"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# Median ns/op per benchmark, in first-seen order.
awk '/^Benchmark/ {
        name = $1; sub(/-[0-9]+$/, "", name)
        if (!(name in n)) order[++k] = name
        v[name, ++n[name]] = $3; allocs[name] = $(NF-1)
     }
     END {
        printf "%-48s %12s %10s\n", "benchmark", "median ns/op", "allocs/op"
        for (i = 1; i <= k; i++) {
            name = order[i]; m = n[name]
            for (a = 1; a <= m; a++) s[a] = v[name, a] + 0
            for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (s[b] < s[a]) { t = s[a]; s[a] = s[b]; s[b] = t }
            med = (m % 2) ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
            printf "%-48s %12.1f %10s\n", name, med, allocs[name]
        }
     }' "$OUT"

#!/usr/bin/env bash
# Benchmark: a miss on a fresh machine, cold vs warm (`core --warm-state`), on the fixture's
# Python extension (pyo3, syn and friends: the heaviest dependency tree the fixture has).
# Prints the ratio; seconds on these small, shared machines are noise.
#
#   setup  machine A builds secure-only with --warm-state: a snapshot lands in A's cache
#   cold   a fresh cache dir builds python-only (a change to tasker-py alone): a full compile
#   warm   a fresh cache dir seeded with A's cache entries (what a remote would hand it) but
#          no cargo target dir builds python-only with --warm-state
#
# Both measured runs miss exactly the `python` target. Every run uses the same cache dir
# path (moved aside in between) and this machine's CARGO_HOME, as CI runners do: cargo keys
# registry crates by their path under CARGO_HOME, and maturin hands pyo3 a config file
# inside the target dir by absolute path, so a snapshot is warm where those paths match.
#
# Usage: scripts/bench-warm.sh     (needs maturin and python3, as the python target does)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --locked --quiet --manifest-path "$root/Cargo.toml"
tbuild=${TBUILD:-$root/target/debug/tbuild}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$root/scripts/make-fixture.sh" "$work/repo" >/dev/null
recipe=$root/tests/fixture-recipe.toml
export CI=1 TBUILD_SCCACHE=never

now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }
core() { # CACHE SHA [ARGS...]
  local cache=$1 sha=$2
  shift 2
  TBUILD_CACHE_DIR=$work/$cache "$tbuild" -q core --repo "$work/repo" --sha "$sha" --out "$work/out-$cache" \
    --recipe "$recipe" --targets python "$@"
}
compiled() { cat "$work/$1"/v1/logs/*/*.log | grep -c '^ *Compiling ' || true; }

core m secure-only --warm-state
mv "$work/m" "$work/a"
t0=$(now); core m python-only; t1=$(now); cold=$(ms "$t0" "$t1")
mv "$work/m" "$work/cold"
mkdir -p "$work/m"
cp -a "$work/a/v1" "$work/m/v1"
rm -rf "$work/m/v1/logs" # A's build logs
t0=$(now); core m python-only --warm-state; t1=$(now); warm=$(ms "$t0" "$t1")
mv "$work/m" "$work/warm"

[[ -z ${VERBOSE:-} ]] || grep -h "Compiling\|Running" "$work"/warm/v1/logs/*/*.log
snapshot=$(du -sh "$work/a/v1/blobs" | cut -f1)
printf '%-6s %8s %10s\n' run ms compiled
printf '%-6s %8d %10d\n' cold "$cold" "$(compiled cold)"
printf '%-6s %8d %10d\n' warm "$warm" "$(compiled warm)"
printf 'warm/cold miss time: %s (snapshot and artifacts in the cache: %s)\n' \
  "$(awk -v w="$warm" -v c="$cold" 'BEGIN { printf "%.2f", w / c }')" "$snapshot"

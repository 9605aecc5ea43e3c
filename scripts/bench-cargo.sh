#!/usr/bin/env bash
# What tbuild saves against cargo on the fixture. The cache-speed harness is scripts/bench.sh.
# Benchmark: what tbuild costs and saves on the fixture, as ratios to plain cargo measured in
# the same run (these machines are small and noisy: compare ratios, not seconds).
#
#   cold   tbuild core, empty cache            vs  cargo build of the same binaries, empty target dir
#   miss   tbuild core after a one-crate change vs  cargo build after the same change (warm target dir)
#   hit    tbuild core, everything cached      vs  cargo build with nothing to do (warm target dir)
#   key    tbuild key (warm memos)             vs  the same hit
#
# Usage: scripts/bench-cargo.sh [RUNS]   (RUNS of each warm measurement, median reported; default 5)
set -euo pipefail
runs=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
tbuild=$root/target/release/tbuild
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$root/scripts/make-fixture.sh" "$work/repo" >/dev/null
recipe=$root/tests/fixture-recipe.toml
targets=tasker-server,tasker-worker,tasker-ctl
export TBUILD_CACHE_DIR=$work/cache CI=1

now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
core() { "$tbuild" -q core --repo "$work/repo" --sha "$1" --out "$work/out" --recipe "$recipe" --targets "$targets"; }
cargo_bins() {
  (cd "$work/plain" && for bin in tasker-server tasker-worker tasker-ctl; do
    CARGO_TARGET_DIR=$work/plain-target cargo build -q --features test-services -p tasker-shared -p tasker-orchestration \
      -p tasker-worker -p tasker-pgmq -p tasker-client -p tasker-ctl --bin "$bin"
  done)
}

git clone -q "$work/repo" "$work/plain"
git -C "$work/plain" checkout -q base
t0=$(now); cargo_bins; t1=$(now); cargo_cold=$(ms "$t0" "$t1")
t0=$(now); core base; t1=$(now); tbuild_cold=$(ms "$t0" "$t1")

git -C "$work/plain" checkout -q ctl-only
t0=$(now); cargo_bins; t1=$(now); cargo_miss=$(ms "$t0" "$t1")
t0=$(now); core ctl-only; t1=$(now); tbuild_miss=$(ms "$t0" "$t1")

cargo_noop=$(for _ in $(seq "$runs"); do t0=$(now); cargo_bins; t1=$(now); ms "$t0" "$t1"; done | median)
sha=$(git -C "$work/repo" rev-parse ctl-only)
tbuild_hit=$(for _ in $(seq "$runs"); do t0=$(now); core "$sha"; t1=$(now); ms "$t0" "$t1"; done | median)
tbuild_key=$(for _ in $(seq "$runs"); do
  t0=$(now); "$tbuild" -q key --repo "$work/repo" --sha "$sha" --recipe "$recipe" --targets "$targets" >/dev/null; t1=$(now); ms "$t0" "$t1"
done | median)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.2f", a / b }'; }
printf '%-6s %10s %10s %8s\n' case tbuild_ms cargo_ms ratio
printf '%-6s %10s %10s %8s\n' cold "$tbuild_cold" "$cargo_cold" "$(ratio "$tbuild_cold" "$cargo_cold")"
printf '%-6s %10s %10s %8s\n' miss "$tbuild_miss" "$cargo_miss" "$(ratio "$tbuild_miss" "$cargo_miss")"
printf '%-6s %10s %10s %8s\n' hit "$tbuild_hit" "$cargo_noop" "$(ratio "$tbuild_hit" "$cargo_noop")"
printf '%-6s %10s %10s %8s\n' key "$tbuild_key" "$tbuild_hit" "$(ratio "$tbuild_key" "$tbuild_hit")"
echo "hit vs cold cargo build: $(ratio "$tbuild_hit" "$cargo_cold") (the saving on a real cache hit)"

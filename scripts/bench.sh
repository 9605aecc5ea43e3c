#!/usr/bin/env bash
# Benchmark harness: tbuild against the physical baselines (git ls-tree + b3sum, tar | zstd,
# zstd -d | tar -x), measured in the same run on the same bytes, printed as ratios. It
# generates a tasker-core-sized repository and artifacts from a seed (benches/harness/), so a
# fresh clone needs nothing but cargo, git, tar and zstd. Results and a full run: BENCHMARKS.md.
# (What tbuild saves against cargo builds on the fixture: scripts/bench-cargo.sh.)
#
# Usage: scripts/bench.sh [--quick]
#   --quick          5% of the artifact sizes, 3 runs, 20 commits of history (a smoke test)
# Environment:
#   BENCH_SCALE=1.0  artifact sizes relative to tasker-core's (127 + 160 + 18 MB + dist/)
#   BENCH_RUNS=5     runs per measurement; the median is reported
#   BENCH_SEED=7     seed of the generated repository and artifacts
#   BENCH_HISTORY=100  commits of history for `key --range`
#   B3SUM=path       the b3sum baseline (default: b3sum on PATH, else the blake3 crate in the
#                    harness; `cargo install b3sum` for the real one)
#   BENCH_KEEP=1     keep the scratch dir (printed) instead of removing it
#   TBUILD_BENCH_CORE=<git dir of tasker-core>  also the real-tasker-core rows (benches/harness/real_core.rs)
#   TBUILD_BENCH_CORE_CACHE=<dir>  a cache holding its tasker-ctl build, reused between runs
#   BENCH_CORE_RANGE_RUNS=3  runs of the empty-cache `key --range` rows; BENCH_ONLY_CORE=1 skips the synthetic rows
# Peak RSS is read through GNU time (/usr/bin/time, Debian package `time`) when installed.
# On a fresh clone: about 5 minutes of release build here, then 1-3 minutes of measuring.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ ${1:-} == --quick ]]; then
  export BENCH_SCALE=${BENCH_SCALE:-0.05} BENCH_RUNS=${BENCH_RUNS:-3} BENCH_HISTORY=${BENCH_HISTORY:-20}
elif [[ $# -gt 0 ]]; then
  sed -n '2,22p' "$0" >&2
  exit 2
fi
for tool in git tar zstd; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is needed (apt-get install $tool)" >&2; exit 5; }
done
[[ -x /usr/bin/time ]] || echo "bench.sh: no GNU time (apt-get install time): peak RSS figures will include the harness's own" >&2
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin tbuild
B3SUM=${B3SUM-$(command -v b3sum || true)}
work=$(mktemp -d "${TMPDIR:-/tmp}/tbuild-bench.XXXXXX")
if [[ -n ${BENCH_KEEP:-} ]]; then echo "bench.sh: scratch dir $work" >&2; else trap 'rm -rf "$work"' EXIT; fi
echo "bench.sh: $(nproc) cores, $(uname -sr), tbuild $(git -C "$root" rev-parse --short HEAD), b3sum: ${B3SUM:-blake3 crate}" >&2
export TBUILD=$root/target/release/tbuild BENCH_WORK=$work B3SUM
cargo bench --locked --quiet --manifest-path "$root/Cargo.toml" --bench harness -- run

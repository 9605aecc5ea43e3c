#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, starting from the committed corpus
# in fuzz/corpus/. A crash leaves its input under fuzz/artifacts/<target>/ and fails the run:
# turn it into a regression test (see the tests in src/cache/archive_tests.rs), then fix it.
#
# Uses the stable toolchain without a sanitizer (`-s none`): the targets assert their own
# invariants (nothing written outside the destination, parse/print round trips), and stable
# is the one toolchain CI machines have. Needs cargo-fuzz (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz@0.13.2
fi
targets=(archive_unpack action_record recipe_parse bundle_stage)
cargo fuzz build -s none -O
for target in "${targets[@]}"; do
  # Work on a copy of the corpus: new inputs found in CI are not committed by accident.
  work=$(mktemp -d)
  cp -r "fuzz/corpus/$target/." "$work/"
  echo "fuzz: $target for ${seconds}s" >&2
  log="$work.log"
  status=0
  cargo fuzz run -s none -O "$target" "$work" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
    -max_len=1048576 >"$log" 2>&1 || status=$?
  grep -E "^#[0-9]+ +DONE|^Done [0-9]+ runs" "$log" >&2 || true
  rm -rf "$work"
  if [[ $status -ne 0 ]]; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target found a failing input (see fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  rm -f "$log"
done
echo "fuzz: all targets ran ${seconds}s each without a failure" >&2

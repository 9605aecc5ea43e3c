#!/usr/bin/env bash
# torture.sh [KILLS] [SEED]
#
# Crash-safety torture of the cache: runs `tbuild core`, `restore`, `cache import` and
# `cache gc` on the fixture (three commits, a shared cache) and SIGKILLs each one's process
# group at a random moment, KILLS times (default 120), then checks the cache (see
# tests/e2e/torture.rs, which is the implementation; the test suite runs it with 16 kills).
# The kill moments come from an RNG seeded with SEED (default 8): a failing run replays.
# Prints one line: kills survived per operation, runs completed, verify passes, entries
# restored byte-identically, corrupt entries served (must be 0), temp files swept.
set -euo pipefail

KILLS=${1:-120}
SEED=${2:-8}
cd -- "$(dirname -- "$0")/.."
TBUILD_TORTURE_KILLS=$KILLS TBUILD_TORTURE_SEED=$SEED \
  cargo test --locked --test e2e -- --exact --nocapture \
  torture::torture_kills_never_corrupt_the_cache 2>&1 | grep -E '^torture seed|panicked|test result'

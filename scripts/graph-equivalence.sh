#!/usr/bin/env bash
# The crate graph parsed from the manifests (src/recipe/manifest_graph.rs) against
# `cargo metadata --no-deps` on every distinct manifest set of the last N commits of a
# repository; prints the counts and fails on any difference.
#   scripts/graph-equivalence.sh <git dir> [N=300] [rev=HEAD]
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 <git dir> [N=300] [rev=HEAD]" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
git_dir=$(cd "$1" && pwd)
exec nice -n 10 cargo run --quiet --locked --release --example graph_equivalence -- "$git_dir" "${2:-300}" "${3:-HEAD}"

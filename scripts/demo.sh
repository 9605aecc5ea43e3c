#!/usr/bin/env bash
# Sets a fresh machine up and runs tbuild's main job once, then again to show the cache hit:
#   scripts/demo.sh            on a fixture repository shaped like tasker-core (generated here)
#   DEMO_REPO=URL scripts/demo.sh   on a real repository (e.g. the public tasker-core), with the
#                                   built-in recipe; DEMO_TARGETS=a,b limits it to some targets
# Artifacts land in ./tbuild-out; the cache in $TBUILD_CACHE_DIR (default ~/.cache/tbuild).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-toolchains.sh
cargo build --release --locked --quiet
repo=${DEMO_REPO:-}
recipe=()
if [[ -n ${DEMO_TARGETS:-} ]]; then
  recipe+=(--targets "$DEMO_TARGETS")
fi
if [[ -z $repo ]]; then
  # The fixture is built with its own recipe: plain rake instead of Bundler + rb_sys (RubyGems
  # may be out of reach), a bun FFI package instead of napi-rs.
  repo=$root/target/demo-fixture
  recipe+=(--recipe "$root/tests/fixture-recipe.toml")
  if [[ ! -d $repo/.git ]]; then
    rm -rf "$repo"
    scripts/make-fixture.sh "$repo" >/dev/null
  fi
fi
tbuild=$root/target/release/tbuild
echo "== first run: builds what the cache lacks" >&2
"$tbuild" core --repo "$repo" --sha "${DEMO_SHA:-main}" --out tbuild-out "${recipe[@]}"
echo "== second run: every target restored from the cache" >&2
"$tbuild" core --repo "$repo" --sha "${DEMO_SHA:-main}" --out tbuild-out "${recipe[@]}"
ls -lR tbuild-out

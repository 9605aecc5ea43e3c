#!/usr/bin/env bash
# Sets a fresh machine up and shows what tbuild's cache does, in three runs of `tbuild core`:
#   1. into ./tbuild-out: builds every target the cache lacks (all of them the first time);
#   2. into a new dir, ./tbuild-out-restored: every target restored from the cache;
#   3. the same again: the outputs are already in place, nothing is restored.
# then says what just happened (counts, times, cache size, where the artifacts are).
#   scripts/demo.sh                 on a fixture repository shaped like tasker-core (generated here)
#   DEMO_REPO=URL scripts/demo.sh   on a real repository (e.g. the public tasker-core), with the
#                                   built-in recipe; DEMO_TARGETS=a,b limits it to some targets
# The cache is $TBUILD_CACHE_DIR (default ~/.cache/tbuild).
#
# tbuild is built with the dev profile (dependencies at opt-level 2, see Cargo.toml), the one
# `cargo test` uses too: the README's second command then compiles only tbuild's own tests,
# not the dependencies again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$HOME/.local/bin:$PATH"
repo=${DEMO_REPO:-}
if [[ -n $repo ]]; then
  scripts/install-toolchains.sh tasker-core
else
  scripts/install-toolchains.sh demo
fi

now_ms() { date +%s%3N; }
took() { # START_MS: the time since START_MS, as `850 ms` or `12.3 s`
  local ms=$(($(now_ms) - $1))
  if [[ $ms -lt 1000 ]]; then echo "$ms ms"; else printf '%d.%d s\n' $((ms / 1000)) $((ms % 1000 / 100)); fi
}
count() { # STATUS MANIFEST: how many targets of MANIFEST have STATUS
  grep -c "\"status\": \"$1\"" "$2" || true
}
say() { echo "== $*" >&2; }

say "building tbuild (cargo build --locked: the first time compiles ~300 crates, several minutes)"
started=$(now_ms)
cargo build --locked
build_took=$(took "$started")
target_dir=${CARGO_TARGET_DIR:-$root/target}
tbuild=$target_dir/debug/tbuild

args=()
if [[ -z $repo ]]; then
  # The fixture is built with its own recipe: plain rake instead of Bundler + rb_sys (RubyGems
  # may be out of reach), a bun FFI package instead of napi-rs.
  repo=$root/target/demo-fixture
  args+=(--recipe "$root/tests/fixture-recipe.toml")
  if [[ ! -d $repo/.git ]]; then
    rm -rf "$repo"
    scripts/make-fixture.sh "$repo" >/dev/null
  fi
fi
args+=(--repo "$repo")
explain=("${args[@]}")
if [[ -n ${DEMO_TARGETS:-} ]]; then
  args+=(--targets "$DEMO_TARGETS")
fi

say "run 1: tbuild core --sha ${DEMO_SHA:-main} --out tbuild-out   (builds what the cache lacks)"
started=$(now_ms)
"$tbuild" core "${args[@]}" --sha "${DEMO_SHA:-main}" --out tbuild-out
first_took=$(took "$started")
say "run 1 took $first_took"
# The commit run 1 resolved: a full SHA is looked up in the mirror without fetching, as CI
# would pass it.
sha=$(sed -nE 's/^  "sha": "([^"]+)",?$/\1/p' tbuild-out/manifest.json)

say "run 2: tbuild core --sha ${sha:0:12} --out tbuild-out-restored   (a new dir: every target restored from the cache)"
rm -rf tbuild-out-restored
started=$(now_ms)
"$tbuild" core "${args[@]}" --sha "$sha" --out tbuild-out-restored
second_took=$(took "$started")
say "run 2 took $second_took"
# What the restores themselves took (the manifest's per-target restore times), before run 3
# rewrites the manifest.
unpack_ms=$(awk '/"restore":/ { gsub(/[^0-9]/, "", $2); sum += $2 } END { print sum + 0 }' tbuild-out-restored/manifest.json)

say "run 3: the same again   (outputs already in place: nothing restored)"
started=$(now_ms)
"$tbuild" core "${args[@]}" --sha "$sha" --out tbuild-out-restored
third_took=$(took "$started")
say "run 3 took $third_took"

built=$(count built tbuild-out/manifest.json)
first_hits=$(count hit tbuild-out/manifest.json)
restored=$(count hit tbuild-out-restored/manifest.json)
same="hold the same files"
diff -r -x manifest.json tbuild-out tbuild-out-restored >/dev/null || same="DIFFER (a bug: please report it)"
cache_total=$("$tbuild" cache du | awk '$1 == "total" { print $2, $3 }')
cache_archives=$("$tbuild" cache du | awk '$1 == "archives" { print $2, $3 }')
cat >&2 <<EOF

== what just happened
  tbuild itself     compiled in $build_took (target/debug/tbuild; \`cargo test\` reuses its dependencies)
  run 1             built $built target(s)$([[ $first_hits -gt 0 ]] && echo " and restored $first_hits from an earlier run") in $first_took -> $root/tbuild-out
  run 2             restored $restored target(s) from the cache in $second_took -> $root/tbuild-out-restored
                    (unpacking them took $unpack_ms ms in all; the rest is reading the commit and keying it)
  run 3             found them in place, restored nothing, in $third_took
  the two dirs      $same (manifest.json aside: it records built vs hit)
  cache             $cache_total in $("$tbuild" cache dir) ($cache_archives of it archives; the rest
                    is the git mirror and cargo's build dirs, which make the next build incremental)
  next              why a target missed: $tbuild explain TARGET ${explain[*]} --sha $sha
EOF

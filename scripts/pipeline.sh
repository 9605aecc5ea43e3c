#!/usr/bin/env bash
# The bleeding-edge pipeline of tasker-contrib, as steps that the workflow
# (.github/workflows/contrib-bleeding-edge.yml) calls one by one and that this script also runs
# locally in the same order, so the two cannot drift.
#
# Steps (what each workflow step runs; outputs are `name=value` lines on stdout, also appended
# to $GITHUB_OUTPUT when it is set):
#   pipeline.sh resolve                 CORE_SHA (sha, branch or tag) -> sha=<full sha or as given>,
#                                       release=<tag for --prefer-release, or empty>
#   pipeline.sh build OUT               tbuild core --sha SHA --out OUT: local cache, then the remote
#                                       ($TBUILD_REMOTE), then a build; --prefer-release RELEASE first
#   pipeline.sh pack OUT HANDOFF        one tar per artifact folder (tar keeps the execute bits that
#                                       upload-artifact's zip drops), plus the manifest
#   pipeline.sh unpack HANDOFF DEST     untars every HANDOFF/*.tar into DEST: DEST/tasker-core-*/
#   pipeline.sh smoke KIND DIR          KIND binaries|ruby|python|typescript: loads the artifacts
#                                       under DIR the way their users do, prints what they report
# Step inputs (environment): CORE_SHA, SHA, RELEASE, CORE_REPO (default tbuild's, the public
# tasker-core), CORE_RECIPE, CORE_TARGETS, TBUILD (default `tbuild`), RELEASE_TAG,
# SMOKE_RUN_BINARIES (the binaries the smoke test runs with --version, comma-separated, or
# `all`; default tasker-ctl: the real tasker-server and tasker-worker take no arguments and
# start servers; the others are checked for the execute bit and their libraries).
#
# Local run: `scripts/pipeline.sh` (no step) times every phase for three situations:
#   cold         an empty cache dir (a new machine): fetch, build everything
#   one-change   the same cache, a commit that changes one crate: only its targets rebuild
#   full-hit     the same commit again into a fresh out dir: everything restored, nothing built
# and in each: resolve, restore/build, pack, then per test job of the workflow (rails, python,
# typescript, rust) the hand-off of the folders it downloads (each tar copied without its
# mode, as upload/download-artifact do) and its smoke tests. Default: a fixture
# (scripts/make-fixture.sh) from secure-only to python-only with tests/fixture-recipe.toml,
# whose binaries all run (they print their build marker and exit). PIPELINE_REPO=<url or path> runs on a real tasker-core with the
# built-in recipe (PIPELINE_COLD_REV, PIPELINE_CHANGE_REV: the two commits; PIPELINE_TARGETS
# limits the targets). PIPELINE_WORK (default target/pipeline) holds the cache, the outs and
# report.tsv: situation, phase, seconds, detail.
set -euo pipefail

ARTIFACT_DIRS=(tasker-core-binaries tasker-core-ruby tasker-core-python tasker-core-typescript)
TBUILD=${TBUILD:-tbuild}

die() {
  echo "pipeline: $*" >&2
  exit 1
}

# `name=value` on stdout, and into $GITHUB_OUTPUT under Actions.
output() {
  echo "$1=$2"
  if [[ -n ${GITHUB_OUTPUT:-} ]]; then echo "$1=$2" >>"$GITHUB_OUTPUT"; fi
}

step_resolve() {
  local rev=${CORE_SHA:-main} repo=${CORE_REPO:-https://github.com/tasker-systems/tasker-core.git}
  local sha="" release=${RELEASE_TAG:-} refs
  if [[ $rev =~ ^[0-9a-f]{7,40}$ ]]; then
    # A SHA, full or short: tbuild resolves short ones against its mirror.
    sha=$rev
  else
    refs=$(git ls-remote "$repo" "refs/heads/$rev" "refs/tags/$rev" "refs/tags/$rev^{}") ||
      die "cannot list the refs of $repo"
    # A peeled annotated tag first, then a tag, then a branch.
    sha=$(awk -v t="refs/tags/$rev^{}" '$2 == t { print $1 }' <<<"$refs")
    [[ -n $sha ]] || sha=$(awk -v t="refs/tags/$rev" '$2 == t { print $1 }' <<<"$refs")
    if [[ -n $sha && -z $release && $rev =~ ^v[0-9] ]]; then
      # A release tag: its published artifacts are the quickest way to it (Option B).
      release=$rev
    fi
    [[ -n $sha ]] || sha=$(awk -v t="refs/heads/$rev" '$2 == t { print $1 }' <<<"$refs")
    [[ -n $sha ]] || die "$repo has no branch or tag '$rev' (give a SHA, a branch or a tag)"
  fi
  output sha "$sha"
  output release "$release"
}

step_build() {
  local out=${1:?usage: pipeline.sh build OUT}
  local args=(core --sha "${SHA:?SHA is the resolved commit}" --out "$out")
  if [[ -n ${CORE_REPO:-} ]]; then args+=(--repo "$CORE_REPO"); fi
  if [[ -n ${CORE_RECIPE:-} ]]; then args+=(--recipe "$CORE_RECIPE"); fi
  if [[ -n ${CORE_TARGETS:-} ]]; then args+=(--targets "$CORE_TARGETS"); fi
  if [[ -n ${RELEASE:-} ]]; then args+=(--prefer-release "$RELEASE"); fi
  "$TBUILD" "${args[@]}"
}

step_pack() {
  local out=${1:?usage: pipeline.sh pack OUT HANDOFF} handoff=${2:?usage: pipeline.sh pack OUT HANDOFF} dir
  mkdir -p "$handoff"
  for dir in "${ARTIFACT_DIRS[@]}"; do
    if [[ -d $out/$dir ]]; then
      mkdir -p "$handoff/$dir"
      tar -C "$out" -cf "$handoff/$dir/$dir.tar" "$dir"
    fi
  done
  cp "$out/manifest.json" "$handoff/tbuild-manifest.json"
}

step_unpack() {
  local handoff=${1:?usage: pipeline.sh unpack HANDOFF DEST} dest=${2:?usage: pipeline.sh unpack HANDOFF DEST} tarball
  mkdir -p "$dest"
  local found=0
  while IFS= read -r -d '' tarball; do
    tar -C "$dest" -xf "$tarball"
    found=1
  done < <(find "$handoff" -name 'tasker-core-*.tar' -print0)
  [[ $found == 1 ]] || die "no tasker-core-*.tar under $handoff"
}

# Each smoke test captures what the artifact printed before echoing it, so that a failing load
# fails the step (an `echo "$(cmd)"` would succeed whatever cmd did).
smoke_binaries() {
  local dir=$1/tasker-core-binaries bin name missing out
  [[ -d $dir ]] || die "no $dir"
  for bin in "$dir"/*; do
    name=$(basename "$bin")
    [[ -x $bin ]] || die "$bin is not executable (the execute bit was lost in the hand-off)"
    missing=$(ldd "$bin" 2>/dev/null | grep 'not found' || true)
    [[ -z $missing ]] || die "$bin: libraries not found: $missing"
    if [[ ${SMOKE_RUN_BINARIES:=tasker-ctl} == all || ,$SMOKE_RUN_BINARIES, == *,$name,* ]]; then
      out=$(timeout 30 "$bin" --version) || die "$bin --version failed (exit $?)"
      echo "smoke binaries: ${out%%$'\n'*}"
    else
      echo "smoke binaries: $name is executable, its libraries resolve"
    fi
  done
}

smoke_ruby() {
  local so found=0 out
  while IFS= read -r -d '' so; do
    # Requiring the extension by path runs its Init_ function, as `require "tasker_core"` would.
    out=$(ruby -e 'require ARGV[0]
      puts(defined?(TaskerCore) && TaskerCore.respond_to?(:marker) ? TaskerCore.marker : "loaded #{File.basename(ARGV[0])}")' "$so")
    echo "smoke ruby: $out"
    found=1
  done < <(find "$1/tasker-core-ruby/lib" \( -name '*.so' -o -name '*.bundle' \) -print0)
  [[ $found == 1 ]] || die "no .so or .bundle under $1/tasker-core-ruby/lib"
}

smoke_python() {
  local wheels=("$1"/tasker-core-python/wheels/*.whl) site module out
  [[ -f ${wheels[0]} ]] || die "no wheel in $1/tasker-core-python/wheels"
  # Installed with pip into a directory of its own (a venv would spend most of this step
  # bootstrapping pip), then imported from there alone.
  site=$(mktemp -d)
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --no-index --no-deps --target "$site" "${wheels[@]}"
  # The wheel's top-level module: its first entry that is not metadata.
  module=$(python3 - "${wheels[0]}" <<'EOF'
import sys, zipfile
names = [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if ".dist-info/" not in n]
print(names[0].split("/")[0].split(".")[0])
EOF
  )
  out=$(PYTHONPATH=$site python3 -s -c 'import importlib, sys
m = importlib.import_module(sys.argv[1])
assert m.__file__.startswith(sys.argv[2]), f"{m.__file__} is not from the wheel"
print(m.marker() if hasattr(m, "marker") else "imported " + sys.argv[1])' "$module" "$site")
  rm -rf "$site"
  echo "smoke python: $out"
}

smoke_typescript() {
  local dir=$1/tasker-core-typescript node found=0 out
  [[ -f $dir/package.json ]] || die "no $dir/package.json"
  while IFS= read -r -d '' node; do
    out=$(bun -e 'const m = require(process.argv[1]); console.log(`loaded ${Object.keys(m).length} exports`)' "$node")
    echo "smoke typescript: $out"
    found=1
  done < <(find "$dir" -maxdepth 1 -name '*.node' -print0)
  if [[ $found == 0 ]]; then
    # A bun FFI package: its entry point opens the shared library.
    [[ -f $dir/dist/index.js ]] || die "no .node and no dist/index.js in $dir"
    out=$(bun "$dir/dist/index.js")
    echo "smoke typescript: $out"
  fi
}

step_smoke() {
  local kind=${1:?usage: pipeline.sh smoke KIND DIR} dir=${2:?usage: pipeline.sh smoke KIND DIR}
  case $kind in
    binaries | ruby | python | typescript) "smoke_$kind" "$dir" ;;
    *) die "smoke: KIND is binaries, ruby, python or typescript, not '$kind'" ;;
  esac
}

# --- the local run -----------------------------------------------------------------------
now() { date +%s.%N; }

# timed SITUATION PHASE DETAIL COMMAND...: runs it, appends a row to the report.
timed() {
  local situation=$1 phase=$2 detail=$3 start seconds
  shift 3
  start=$(now)
  "$@"
  seconds=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
  printf '%s\t%s\t%s\t%s\n' "$situation" "$phase" "$seconds" "$detail" >>"$REPORT"
  echo "pipeline: $situation $phase ${seconds}s $detail" >&2
}

# The targets of a manifest with each status, e.g. `built=python hit=ruby,tasker-ctl`.
statuses() {
  python3 - "$1" <<'EOF'
import json, sys
targets = json.load(open(sys.argv[1]))["targets"]
by = {}
for name, t in sorted(targets.items()):
    by.setdefault(t["status"], []).append(name)
print(" ".join(f"{s}={','.join(n)}" for s, n in sorted(by.items())))
EOF
}

situation() {
  local name=$1 rev=$2 dir=$WORK/$1 job jobdir kind folder outputs
  rm -rf "$dir"
  mkdir -p "$dir"
  outputs=$(CORE_SHA=$rev timed "$name" resolve "$rev" step_resolve)
  SHA=$(sed -n 's/^sha=//p' <<<"$outputs")
  RELEASE=$(sed -n 's/^release=//p' <<<"$outputs")
  export SHA RELEASE
  timed "$name" restore-build "" step_build "$dir/out"
  sed -i "\$s/\$/$(statuses "$dir/out/manifest.json")/" "$REPORT"
  timed "$name" pack "" step_pack "$dir/out" "$dir/handoff"
  # The test jobs of the workflow, each with the artifacts it downloads and the smoke tests
  # it runs.
  for job in rails:ruby python:python typescript:typescript rust:; do
    kind=${job#*:}
    job=${job%%:*}
    jobdir=$dir/jobs/$job
    # What upload-artifact + download-artifact do to a file: its bytes arrive, its mode does not.
    mkdir -p "$jobdir/download"
    for folder in tasker-core-binaries ${kind:+tasker-core-$kind}; do
      install -m 0644 "$dir/handoff/$folder/$folder.tar" "$jobdir/download/"
    done
    timed "$name" "handoff-$job" "" step_unpack "$jobdir/download" "$jobdir/artifacts"
    timed "$name" "smoke-$job" "" smoke_logged "$jobdir" binaries $kind
  done
}

# smoke_logged JOBDIR KIND...: the job's smoke tests, also kept in JOBDIR/smoke.txt.
smoke_logged() {
  local jobdir=$1 kind
  shift
  for kind in "$@"; do
    step_smoke "$kind" "$jobdir/artifacts"
  done | tee "$jobdir/smoke.txt"
}

run_local() {
  local root
  root=$(cd "$(dirname "$0")/.." && pwd)
  WORK=${PIPELINE_WORK:-$root/target/pipeline}
  mkdir -p "$WORK"
  WORK=$(cd "$WORK" && pwd)
  REPORT=$WORK/report.tsv
  if [[ $TBUILD == tbuild ]] && ! command -v tbuild >/dev/null; then
    (cd "$root" && cargo build --release --locked --quiet)
    TBUILD=$root/target/release/tbuild
  fi
  export TBUILD
  local cold change
  if [[ -n ${PIPELINE_REPO:-} ]]; then
    CORE_REPO=$PIPELINE_REPO
    cold=${PIPELINE_COLD_REV:?with PIPELINE_REPO, give PIPELINE_COLD_REV and PIPELINE_CHANGE_REV}
    change=${PIPELINE_CHANGE_REV:?with PIPELINE_REPO, give PIPELINE_CHANGE_REV}
  else
    export SMOKE_RUN_BINARIES=${SMOKE_RUN_BINARIES:-all}
    CORE_REPO=$WORK/fixture
    CORE_RECIPE=$root/tests/fixture-recipe.toml
    export CORE_RECIPE
    if [[ ! -d $CORE_REPO/.git ]]; then
      rm -rf "$CORE_REPO"
      "$root/scripts/make-fixture.sh" "$CORE_REPO" >/dev/null
    fi
    cold=${PIPELINE_COLD_REV:-secure-only}
    change=${PIPELINE_CHANGE_REV:-python-only}
  fi
  export CORE_REPO
  if [[ -n ${PIPELINE_TARGETS:-} ]]; then export CORE_TARGETS=$PIPELINE_TARGETS; fi
  # A new machine: nothing cached. The later situations reuse this cache, as a warm runner does.
  export TBUILD_CACHE_DIR=$WORK/cache
  rm -rf "$TBUILD_CACHE_DIR"
  printf 'situation\tphase\tseconds\tdetail\n' >"$REPORT"
  situation cold "$cold"
  situation one-change "$change"
  situation full-hit "$change"
  echo >&2
  column -t -s $'\t' "$REPORT" >&2 || cat "$REPORT" >&2
}

case ${1:-run} in
  resolve) step_resolve ;;
  build) step_build "${@:2}" ;;
  pack) step_pack "${@:2}" ;;
  unpack) step_unpack "${@:2}" ;;
  smoke) step_smoke "${@:2}" ;;
  run) run_local ;;
  *) die "unknown step '$1' (resolve, build, pack, unpack, smoke, or none for the local run)" ;;
esac

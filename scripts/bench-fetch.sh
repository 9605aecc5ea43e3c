#!/usr/bin/env bash
# First `tbuild key --sha` of a repository's main tip over a network transport: objects and
# mirror size fetched, seconds of the fetch and of the whole command, for each tbuild binary
# given (e.g. main's and a branch's, to compare a full first fetch with a shallow one).
# The repository is served by git-daemon on 127.0.0.1 (libgit2's local transport cannot fetch
# shallow, so a path would not show the difference). It must not itself be shallow: libgit2
# fails on a shallow server ("invalid packet line"); `git fast-export --all | git fast-import`
# into a fresh bare repository makes a complete copy (its boundary commits become roots).
#
# Usage: scripts/bench-fetch.sh GIT_DIR TBUILD... 
#   BENCH_RUNS=3   runs per binary (interleaved); every run uses a fresh cache dir
#   BENCH_TARGETS=tasker-ctl  --targets of the key
#   BENCH_REV=main  the commit keyed
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,13p' "$0" >&2; exit 2; }
repo=$(cd "$1" && pwd)
shift
runs=${BENCH_RUNS:-3}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d "${TMPDIR:-/tmp}/tbuild-fetch.XXXXXX")
"$(git --exec-path)/git-daemon" --reuseaddr --export-all --listen=127.0.0.1 --port="$port" \
  --base-path="$(dirname "$repo")" "$(dirname "$repo")" 2>"$work/daemon.log" &
daemon=$!
trap 'kill $daemon; rm -rf "$work"' EXIT
url=git://127.0.0.1:$port/$(basename "$repo")
for _ in $(seq 50); do git ls-remote "$url" HEAD >/dev/null 2>&1 && break; sleep 0.1; done
sha=$(git -C "$repo" rev-parse "${BENCH_REV:-main}^{commit}")
echo "bench-fetch: $url at $sha, $(git -C "$repo" rev-list --all --count) commits" >&2
for run in $(seq "$runs"); do
  for bin in "$@"; do
    cache=$work/cache
    start=$EPOCHREALTIME
    TBUILD_CACHE_DIR=$cache "$bin" key --sha "$sha" --repo "$url" --targets "${BENCH_TARGETS:-tasker-ctl}" 2>&1 >/dev/null |
      while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done >"$work/stderr"
    end=$EPOCHREALTIME
    fetch=$(awk '/fetching/{s=$1} /fetch: /{e=$1} END{printf "%.2f", e-s}' "$work/stderr")
    mirror=$(ls -d "$cache"/repos/*/mirror.git)
    objects=$(git -C "$mirror" count-objects -v | awk '/^(count|in-pack):/{n+=$2} END{print n}')
    printf '%s run %s: fetch %s s, key %.2f s, %s objects, %s commits, mirror %s KiB, shallow %s, load %s\n' \
      "$bin" "$run" "$fetch" "$(echo "$end - $start" | bc)" "$objects" "$(git -C "$mirror" rev-list --all --count)" \
      "$(du -sk "$mirror" | cut -f1)" "$(git -C "$mirror" rev-parse --is-shallow-repository)" "$(cut -d' ' -f1 /proc/loadavg)"
    rm -rf "$cache"
  done
done

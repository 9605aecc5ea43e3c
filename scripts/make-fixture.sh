#!/usr/bin/env bash
# make-fixture.sh DEST
#
# Generates a small git repository shaped like the tasker-core monorepo (current
# layout) for tbuild's tests and demo: a Cargo workspace under crates/ with shared
# proto/ and migrations/ reached through symlinks, plus Ruby, Python and TypeScript
# extension crates. All code is tiny and written here; nothing is fetched.
#
# History on branch main (each commit tagged; main ends at proto-change):
#   base           the whole tree
#   docs-only      README.md, docs/guide.md, crates/tasker-ctl/README.md
#   ctl-only       crates/tasker-ctl/src/main.rs        (ctl-1 -> ctl-2)
#   lock-change    Cargo.lock                           (itoa 1.0.14 -> 1.0.15)
#   shared-change  crates/tasker-shared/src/lib.rs      (shared-1 -> shared-2)
#   secure-only    crates/tasker-secure/src/lib.rs      (secure-1 -> secure-2)
#   python-only    crates/tasker-py/src/lib.rs          (py-1 -> py-2)
#   proto-change   proto/tasker.proto
#
# Era branches, for layout detection: each is one commit on base (tagged with the
# branch's name) whose tree is an older layout of tasker-core instead of crates/ (base's
# crates/, Cargo.lock, docs/ and .cargo/ removed; README.md, .gitignore, proto/ and
# migrations/ kept). Every member is a one-line stub; no external dependencies, no
# Cargo.lock.
#   era-workers-napi    core crates at the root (tasker-shared, tasker-pgmq,
#                       tasker-client, tasker-worker, tasker-orchestration), root
#                       tasker-ctl/, workers/{ruby,python,typescript,rust} with FFI
#                       crates tasker-{rb,py,ts}; package.json has a "napi" key
#   era-workers-koffi   as era-workers-napi, but the TypeScript worker uses koffi
#   era-workers-cli     as era-workers-koffi, but root tasker-cli/ instead of
#                       tasker-ctl/ and FFI crates tasker-worker-{rb,py,ts}
#   era-workers-early   pgmq-notify/, the tasker-cli bin inside tasker-client,
#                       only workers/ruby (tasker-worker-rb) and workers/rust
#   era-workers-python  as era-workers-early plus workers/python (tasker-worker-py)
#   era-unknown         a single-crate repository (tasker-core-rs): Cargo.toml,
#                       src/lib.rs and README.md only
#
# Lock-slice branch lock-slices on main (each commit tagged; keyed, never built):
#   slice-base        tasker-shared gains a build-dependency and an inherited workspace
#                     dependency, tasker-worker a cfg(unix) one, tasker-pgmq a
#                     dev-dependency, tasker-py a normal one (all slice-*, fake lock entries)
#   slice-outside     bumps tasker-py's and the dev-dependency, and an unused entry of
#                     [workspace.dependencies]
#   slice-build-dep   bumps the build-dependency
#   slice-target-dep  bumps the cfg(unix) dependency
#   slice-feature     one more feature of the inherited workspace dependency (no lock change)
# The work tree is left on main.
#
# Commits are deterministic: fixed identities and dates, no signing, no hooks, no
# user or system git config, so every run produces the same commit SHAs.
set -euo pipefail

die() {
  echo "make-fixture: $*" >&2
  exit 1
}

if [[ $# -ne 1 || -z ${1:-} ]]; then
  echo "usage: $0 DEST" >&2
  exit 2
fi
DEST=$1

if [[ -e $DEST || -L $DEST ]]; then
  [[ -d $DEST ]] || die "$DEST exists and is not a directory"
  [[ -z "$(ls -A -- "$DEST")" ]] || die "$DEST exists and is not empty"
fi
mkdir -p -- "$DEST"
cd -- "$DEST"

umask 022
export LC_ALL=C TZ=UTC

# Isolate git from the caller's environment and configuration.
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY \
  GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_COMMON_DIR GIT_NAMESPACE GIT_PREFIX \
  GIT_CONFIG GIT_CONFIG_PARAMETERS GIT_CONFIG_COUNT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="Fixture Author" GIT_AUTHOR_EMAIL="author@fixture.invalid"
export GIT_COMMITTER_NAME="Fixture Committer" GIT_COMMITTER_EMAIL="committer@fixture.invalid"

g() {
  git -c init.defaultBranch=main -c core.symlinks=true -c core.hooksPath=/dev/null \
    -c commit.gpgSign=false -c tag.gpgSign=false -c core.autocrlf=false \
    -c core.fileMode=true "$@"
}

COMMIT_N=0
EPOCH0=1704067200 # 2024-01-01T00:00:00Z; each commit one hour later

# commit TAG MESSAGE: stage everything, commit with the next fixed date, tag it.
commit() {
  local tag=$1 msg=$2 when
  when="$((EPOCH0 + COMMIT_N * 3600)) +0000"
  COMMIT_N=$((COMMIT_N + 1))
  g add -A
  GIT_AUTHOR_DATE=$when GIT_COMMITTER_DATE=$when g commit -q --no-verify -m "$msg"
  g tag "$tag"
}

# w PATH: write stdin to PATH, creating parent directories.
w() {
  mkdir -p -- "$(dirname -- "$1")"
  cat >"$1"
}

# replace FILE OLD NEW: replace every OLD in FILE (which must contain it).
replace() {
  local f=$1 old=$2 new=$3 content
  content=$(<"$f")
  [[ $content == *"$old"* ]] || die "internal: '$old' not found in $f"
  printf '%s\n' "${content//"$old"/"$new"}" >"$f"
}

g init -q --template= -b main .

# ---------------------------------------------------------------------------
# base
# ---------------------------------------------------------------------------

w Cargo.toml <<'EOF'
[workspace]
resolver = "2"
members = [
    "crates/tasker-shared",
    "crates/tasker-pgmq",
    "crates/tasker-client",
    "crates/tasker-worker",
    "crates/tasker-orchestration",
    "crates/tasker-ctl",
    "crates/tasker-secure",
    "crates/tasker-rb",
    "crates/tasker-py",
    "crates/tasker-ts",
]

[workspace.package]
version = "0.1.0"
edition = "2021"
publish = false
EOF

# write_lock ITOA_VERSION: writes Cargo.lock exactly as `cargo generate-lockfile`
# (cargo 1.95) writes it for this workspace, with itoa pinned by
# `cargo update -p itoa --precise ITOA_VERSION`. Both pins are embedded here.
write_lock() {
  local itoa_version=$1 itoa_checksum
  case $itoa_version in
    1.0.14) itoa_checksum=d75a2a4b1b190afb6f5425f10f6a8f959d2ea0b9c2b1d79553551850539e4674 ;;
    1.0.15) itoa_checksum=4a5f13b858c8d314ee3e8f639011f7ccefe71f97f96e50151fb991f267928e2c ;;
    *) die "internal: no Cargo.lock for itoa $itoa_version" ;;
  esac
  cat >Cargo.lock <<EOF
# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "heck"
version = "0.5.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "2304e00983f87ffb38b55b444b5e3b60a884b5d30c0fca7d82fe33449bbe55ea"

[[package]]
name = "itoa"
version = "$itoa_version"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "$itoa_checksum"

[[package]]
name = "libc"
version = "0.2.191"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "65cd87c9a6d60536580b316ad985726104730a5151c99845f2490428ef91240a"

[[package]]
name = "once_cell"
version = "1.21.4"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "9f7c3e4beb33f85d45ae3e3a1792185706c8e16d043238c593331cc7cd313b50"

[[package]]
name = "portable-atomic"
version = "1.15.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "05c8b63e8d9609db387f0324918f81d68fe27748f084ef092fb35954d0539a85"

[[package]]
name = "proc-macro2"
version = "1.0.107"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "985e7ec9bb745e6ce6535b544d84d6cd6f7ad8bd711c398938ae983b91a766d9"
dependencies = [
 "unicode-ident",
]

[[package]]
name = "pyo3"
version = "0.29.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "700d18fa267b73b9b521fd7e13580e2f446916f176cacee1ab63fcc8191f1655"
dependencies = [
 "libc",
 "once_cell",
 "portable-atomic",
 "pyo3-build-config",
 "pyo3-ffi",
 "pyo3-macros",
]

[[package]]
name = "pyo3-build-config"
version = "0.29.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "7b3fc0c4d08f6bb10e71fe39dfb9e2f59c6eb6854e22ec8092f50c69a4499adb"
dependencies = [
 "target-lexicon",
]

[[package]]
name = "pyo3-ffi"
version = "0.29.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "dfc0b8e19df29aad7086cf977bb0c2a2f143e30567eb113e9cf72b62ca698330"
dependencies = [
 "libc",
 "pyo3-build-config",
]

[[package]]
name = "pyo3-macros"
version = "0.29.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "6100e8a4b5eba53afaa5ed078364851a0b2499c553a44c31026b929049b49dc6"
dependencies = [
 "proc-macro2",
 "pyo3-macros-backend",
 "quote",
 "syn",
]

[[package]]
name = "pyo3-macros-backend"
version = "0.29.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "6143877a16e82b5a727b7127ff4cd86858a24a28d745d72f43e6f227c7b1bdb3"
dependencies = [
 "heck",
 "proc-macro2",
 "quote",
 "syn",
]

[[package]]
name = "quote"
version = "1.0.47"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "1fbf4db142a473a8d80c26bbf18454ed458bf8d26c8219c331daecfdbd079001"
dependencies = [
 "proc-macro2",
]

[[package]]
name = "syn"
version = "2.0.119"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "872831b642d1a07999a962a351ed35b955ea2cfc8f3862091e2a240a84f17297"
dependencies = [
 "proc-macro2",
 "quote",
 "unicode-ident",
]

[[package]]
name = "target-lexicon"
version = "0.13.5"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "adb6935a6f5c20170eeceb1a3835a49e12e19d792f6dd344ccc76a985ca5a6ca"

[[package]]
name = "tasker-client"
version = "0.1.0"
dependencies = [
 "tasker-pgmq",
 "tasker-secure",
 "tasker-shared",
]

[[package]]
name = "tasker-ctl"
version = "0.1.0"
dependencies = [
 "tasker-client",
 "tasker-pgmq",
 "tasker-shared",
]

[[package]]
name = "tasker-orchestration"
version = "0.1.0"
dependencies = [
 "tasker-pgmq",
 "tasker-shared",
]

[[package]]
name = "tasker-pgmq"
version = "0.1.0"

[[package]]
name = "tasker-py"
version = "0.1.0"
dependencies = [
 "pyo3",
 "tasker-client",
 "tasker-pgmq",
 "tasker-shared",
 "tasker-worker",
]

[[package]]
name = "tasker-rb"
version = "0.1.0"
dependencies = [
 "tasker-client",
 "tasker-pgmq",
 "tasker-shared",
 "tasker-worker",
]

[[package]]
name = "tasker-secure"
version = "0.1.0"

[[package]]
name = "tasker-shared"
version = "0.1.0"
dependencies = [
 "itoa",
]

[[package]]
name = "tasker-ts"
version = "0.1.0"
dependencies = [
 "tasker-client",
 "tasker-pgmq",
 "tasker-shared",
 "tasker-worker",
]

[[package]]
name = "tasker-worker"
version = "0.1.0"
dependencies = [
 "tasker-client",
 "tasker-pgmq",
 "tasker-shared",
]

[[package]]
name = "unicode-ident"
version = "1.0.27"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "a2c754d6c33795a1c324727428e5a7dedb5b06195f9890bdbcba760d3e246563"
EOF
}

w .cargo/config.toml <<'EOF'
# Workspace-wide cargo settings. This one is harmless: it changes nothing
# about what gets built.
[term]
quiet = false
EOF

w .gitignore <<'EOF'
target/
*.so
node_modules/
dist/
.venv/
EOF

w README.md <<'EOF'
# tasker (fixture)

A miniature task orchestration monorepo used to exercise build tooling.

- `crates/` holds the Rust workspace: shared code, a queue layer, a client,
  a worker, the orchestration server, a CLI and language bindings.
- `proto/` and `migrations/` are shared by the crates through symlinks.
- `docs/` has the guide.
EOF

w docs/guide.md <<'EOF'
# Guide

Build everything with `cargo build --workspace`.

The server binary is `tasker-server`, the worker is `tasker-worker` and the
command line tool is `tasker-ctl`. Each prints its build marker and exits.
EOF

w proto/tasker.proto <<'EOF'
syntax = "proto3";

package tasker.v1;

message Task {
  string id = 1;
  string name = 2;
}
EOF

w migrations/0001_init.sql <<'EOF'
CREATE TABLE tasks (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
EOF

# --- tasker-shared ---------------------------------------------------------

w crates/tasker-shared/Cargo.toml <<'EOF'
[package]
name = "tasker-shared"
version.workspace = true
edition.workspace = true
publish.workspace = true

[dependencies]
itoa = "1.0.14"
EOF

w crates/tasker-shared/README.md <<'EOF'
# tasker-shared

Types and constants shared by every tasker crate. `proto/` and `migrations/`
here are symlinks to the repository root.
EOF

w crates/tasker-shared/src/lib.rs <<'EOF'
//! Shared definitions for the tasker crates.

/// The wire schema, embedded through the crate's `proto` symlink.
pub const PROTO: &str = include_str!("../proto/tasker.proto");

/// Revision marker of this crate, printed by every binary.
pub const SHARED_REV: &str = "shared-1";

/// Returns the shared marker, e.g. `shared-1`.
pub fn marker() -> String {
    let (name, rev) = SHARED_REV.split_once('-').expect("SHARED_REV is NAME-N");
    let rev: u32 = rev.parse().expect("SHARED_REV ends in a number");
    let mut buf = itoa::Buffer::new();
    format!("{name}-{}", buf.format(rev))
}
EOF

# As tasker-shared's real build script does, watch proto/ through the crate's symlink, by
# absolute path: cargo then takes the newest mtime of the link, the directory and
# everything beneath it, and keeps the path as printed in the script's saved output.
w crates/tasker-shared/build.rs <<'EOF'
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed={dir}/proto");
}
EOF

w crates/tasker-shared/tests/smoke.rs <<'EOF'
#[test]
fn marker_matches_rev() {
    assert_eq!(tasker_shared::marker(), tasker_shared::SHARED_REV);
}

#[test]
fn proto_is_embedded() {
    assert!(tasker_shared::PROTO.contains("package tasker.v1;"));
}
EOF

ln -s ../../proto crates/tasker-shared/proto
ln -s ../../migrations crates/tasker-shared/migrations

# --- tasker-pgmq -----------------------------------------------------------

w crates/tasker-pgmq/Cargo.toml <<'EOF'
[package]
name = "tasker-pgmq"
version.workspace = true
edition.workspace = true
publish.workspace = true
EOF

w crates/tasker-pgmq/src/lib.rs <<'EOF'
//! Queue naming for the tasker message queues.

pub const PGMQ_REV: &str = "pgmq-1";

/// Name of the queue for a namespace.
pub fn queue_name(namespace: &str) -> String {
    format!("{namespace}_queue")
}
EOF

# --- tasker-secure (only a dev-dependency of tasker-client) -----------------

w crates/tasker-secure/Cargo.toml <<'EOF'
[package]
name = "tasker-secure"
version.workspace = true
edition.workspace = true
publish.workspace = true
EOF

w crates/tasker-secure/src/lib.rs <<'EOF'
//! Secret redaction helpers.

pub const SECURE_REV: &str = "secure-1";

/// Replaces a secret with a fixed mask.
pub fn redact(_secret: &str) -> &'static str {
    "****"
}
EOF

# --- tasker-client ---------------------------------------------------------

w crates/tasker-client/Cargo.toml <<'EOF'
[package]
name = "tasker-client"
version.workspace = true
edition.workspace = true
publish.workspace = true

[dependencies]
tasker-shared = { path = "../tasker-shared" }
tasker-pgmq = { path = "../tasker-pgmq" }

[dev-dependencies]
tasker-secure = { path = "../tasker-secure" }
EOF

w crates/tasker-client/src/lib.rs <<'EOF'
//! Client for submitting tasks.

pub const CLIENT_REV: &str = "client-1";

/// Describes where a task for `namespace` is sent.
pub fn describe(namespace: &str) -> String {
    format!(
        "{} -> {}",
        tasker_shared::marker(),
        tasker_pgmq::queue_name(namespace)
    )
}
EOF

w crates/tasker-client/tests/redact.rs <<'EOF'
#[test]
fn client_output_can_be_redacted() {
    let line = tasker_client::describe("default");
    assert!(line.ends_with("default_queue"));
    assert_eq!(tasker_secure::redact(&line), "****");
}
EOF

# --- tasker-worker ---------------------------------------------------------

w crates/tasker-worker/Cargo.toml <<'EOF'
[package]
name = "tasker-worker"
version.workspace = true
edition.workspace = true
publish.workspace = true

[features]
test-services = []

[dependencies]
tasker-client = { path = "../tasker-client" }
tasker-shared = { path = "../tasker-shared" }
tasker-pgmq = { path = "../tasker-pgmq" }
EOF

w crates/tasker-worker/src/lib.rs <<'EOF'
//! Task worker.

pub const WORKER_REV: &str = "worker-1";

/// The worker marker, e.g. `worker-1 shared-1`.
pub fn marker() -> String {
    format!("{WORKER_REV} {}", tasker_shared::marker())
}

/// The queue this worker polls.
pub fn queue() -> String {
    tasker_pgmq::queue_name("worker")
}

/// Whether the build carries the in-process test services.
pub fn test_services() -> bool {
    cfg!(feature = "test-services")
}

#[doc(hidden)]
pub fn client_line() -> String {
    tasker_client::describe("worker")
}
EOF

w crates/tasker-worker/src/main.rs <<'EOF'
fn main() {
    println!("tasker-worker {}", tasker_worker::marker());
}
EOF

# --- tasker-orchestration --------------------------------------------------

w crates/tasker-orchestration/Cargo.toml <<'EOF'
[package]
name = "tasker-orchestration"
version.workspace = true
edition.workspace = true
publish.workspace = true

[features]
test-services = []

[dependencies]
tasker-shared = { path = "../tasker-shared" }
tasker-pgmq = { path = "../tasker-pgmq" }

[[bin]]
name = "tasker-server"
path = "src/main.rs"
EOF

w crates/tasker-orchestration/src/lib.rs <<'EOF'
//! Orchestration server.

pub const ORCH_REV: &str = "orch-1";

/// The server marker, e.g. `orch-1 shared-1`.
pub fn marker() -> String {
    format!("{ORCH_REV} {}", tasker_shared::marker())
}

/// The queue the server publishes to.
pub fn queue() -> String {
    tasker_pgmq::queue_name("orchestration")
}

/// Whether the build carries the in-process test services.
pub fn test_services() -> bool {
    cfg!(feature = "test-services")
}
EOF

w crates/tasker-orchestration/src/main.rs <<'EOF'
fn main() {
    println!("tasker-server {}", tasker_orchestration::marker());
}
EOF

# --- tasker-ctl ------------------------------------------------------------

w crates/tasker-ctl/Cargo.toml <<'EOF'
[package]
name = "tasker-ctl"
version.workspace = true
edition.workspace = true
publish.workspace = true

[dependencies]
tasker-client = { path = "../tasker-client" }
tasker-shared = { path = "../tasker-shared" }
tasker-pgmq = { path = "../tasker-pgmq" }
EOF

w crates/tasker-ctl/README.md <<'EOF'
# tasker-ctl

Command line tool for tasker. Running it prints its build marker.
EOF

w crates/tasker-ctl/src/main.rs <<'EOF'
const CTL_REV: &str = "ctl-1";

fn main() {
    let _ = (tasker_client::CLIENT_REV, tasker_pgmq::PGMQ_REV);
    println!("tasker-ctl {CTL_REV} {}", tasker_shared::marker());
}
EOF

# --- tasker-rb: Ruby extension without rb_sys -------------------------------

w crates/tasker-rb/Cargo.toml <<'EOF'
[package]
name = "tasker-rb"
version.workspace = true
edition.workspace = true
publish.workspace = true

[lib]
name = "tasker_rb"
crate-type = ["cdylib"]
# The Ruby C API symbols resolve only inside a ruby process.
test = false
doctest = false

[dependencies]
tasker-worker = { path = "../tasker-worker" }
tasker-client = { path = "../tasker-client" }
tasker-shared = { path = "../tasker-shared" }
tasker-pgmq = { path = "../tasker-pgmq" }
EOF

w crates/tasker-rb/src/lib.rs <<'EOF'
//! Ruby extension `TaskerCore`. The few Ruby C API functions it uses are declared
//! here; they resolve from the ruby process when the library is loaded.
#![allow(non_camel_case_types, non_snake_case)]

use std::ffi::{c_char, c_int, c_void, CString};

type VALUE = usize;

extern "C" {
    fn rb_define_module(name: *const c_char) -> VALUE;
    fn rb_define_module_function(module: VALUE, name: *const c_char, func: *const c_void, argc: c_int);
    fn rb_str_new_cstr(ptr: *const c_char) -> VALUE;
}

const RB_REV: &str = "rb-1";

/// The extension marker, e.g. `rb-1 shared-1`.
pub fn marker() -> String {
    let _ = (tasker_worker::WORKER_REV, tasker_client::CLIENT_REV, tasker_pgmq::PGMQ_REV);
    format!("{RB_REV} {}", tasker_shared::marker())
}

extern "C" fn rb_marker(_module: VALUE) -> VALUE {
    let s = CString::new(marker()).expect("marker has no NUL");
    unsafe { rb_str_new_cstr(s.as_ptr()) }
}

#[no_mangle]
pub extern "C" fn Init_tasker_rb() {
    unsafe {
        let module = rb_define_module(c"TaskerCore".as_ptr());
        rb_define_module_function(module, c"marker".as_ptr(), rb_marker as *const c_void, 0);
    }
}
EOF

w crates/tasker-rb/Rakefile <<'EOF'
# Builds the extension with cargo and copies it where lib/tasker_core.rb loads it.
require "fileutils"

ROOT = File.expand_path("../..", __dir__)

desc "Build the native extension into lib/tasker_core/"
task :compile do
  target = File.expand_path(ENV.fetch("CARGO_TARGET_DIR", "target"), ROOT)
  Dir.chdir(ROOT) { sh "cargo", "build", "-p", "tasker-rb" }
  dest = File.join(__dir__, "lib", "tasker_core")
  FileUtils.mkdir_p(dest)
  FileUtils.cp(File.join(target, "debug", "libtasker_rb.so"), File.join(dest, "tasker_rb.so"))
end

task default: :compile
EOF

w crates/tasker-rb/lib/tasker_core.rb <<'EOF'
# frozen_string_literal: true

require_relative "tasker_core/tasker_rb"
EOF

w crates/tasker-rb/tasker-rb.gemspec <<'EOF'
Gem::Specification.new do |spec|
  spec.name = "tasker-rb"
  spec.version = "0.1.0"
  spec.summary = "Ruby bindings for tasker"
  spec.authors = ["Fixture Author"]
  spec.license = "MIT"
  spec.files = Dir["lib/**/*.rb"]
  spec.require_paths = ["lib"]
end
EOF

w crates/tasker-rb/spec/marker_spec.rb <<'EOF'
require_relative "../lib/tasker_core"

RSpec.describe TaskerCore do
  it "reports its marker" do
    expect(TaskerCore.marker).to start_with("rb-")
  end
end
EOF

# --- tasker-py: pyo3 extension built with maturin ---------------------------

w crates/tasker-py/Cargo.toml <<'EOF'
[package]
name = "tasker-py"
version.workspace = true
edition.workspace = true
publish.workspace = true

[lib]
name = "tasker_py"
crate-type = ["cdylib"]
# An extension module does not link libpython, so a test harness cannot link.
test = false
doctest = false

[dependencies]
pyo3 = { version = "=0.29.3", features = ["extension-module", "abi3-py38"] }
tasker-worker = { path = "../tasker-worker" }
tasker-client = { path = "../tasker-client" }
tasker-shared = { path = "../tasker-shared" }
tasker-pgmq = { path = "../tasker-pgmq" }
EOF

w crates/tasker-py/pyproject.toml <<'EOF'
[build-system]
requires = ["maturin>=1.0,<2.0"]
build-backend = "maturin"

[project]
name = "tasker-py"
requires-python = ">=3.8"
dynamic = ["version"]

[tool.maturin]
module-name = "tasker_py"
features = ["pyo3/extension-module"]
EOF

w crates/tasker-py/src/lib.rs <<'EOF'
//! Python module `tasker_py`.

use pyo3::prelude::*;

const PY_REV: &str = "py-1";

/// The extension marker, e.g. `py-1 shared-1`.
#[pyfunction]
fn marker() -> String {
    let _ = (tasker_worker::WORKER_REV, tasker_client::CLIENT_REV, tasker_pgmq::PGMQ_REV);
    format!("{PY_REV} {}", tasker_shared::marker())
}

#[pymodule]
fn tasker_py(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(marker, m)?)
}
EOF

w crates/tasker-py/tests/test_marker.py <<'EOF'
import tasker_py


def test_marker():
    assert tasker_py.marker().startswith("py-")
EOF

# --- tasker-ts: Bun FFI package over a cdylib -------------------------------

w crates/tasker-ts/Cargo.toml <<'EOF'
[package]
name = "tasker-ts"
version.workspace = true
edition.workspace = true
publish.workspace = true

[lib]
name = "tasker_ts"
crate-type = ["cdylib"]
test = false
doctest = false

[dependencies]
tasker-worker = { path = "../tasker-worker" }
tasker-client = { path = "../tasker-client" }
tasker-shared = { path = "../tasker-shared" }
tasker-pgmq = { path = "../tasker-pgmq" }
EOF

w crates/tasker-ts/src/lib.rs <<'EOF'
//! C ABI for the TypeScript package (loaded with `bun:ffi`).

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

const TS_REV: &str = "ts-1";

static MARKER: OnceLock<CString> = OnceLock::new();

/// The package marker, e.g. `ts-1 shared-1`, as a NUL-terminated string that
/// lives for the rest of the process.
#[no_mangle]
pub extern "C" fn tasker_ts_marker() -> *const c_char {
    MARKER
        .get_or_init(|| {
            let _ = (tasker_worker::WORKER_REV, tasker_client::CLIENT_REV, tasker_pgmq::PGMQ_REV);
            CString::new(format!("{TS_REV} {}", tasker_shared::marker())).expect("no NUL")
        })
        .as_ptr()
}
EOF

w crates/tasker-ts/package.json <<'EOF'
{
  "name": "tasker-ts",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "module": "src/index.ts",
  "bin": {
    "tasker-ts": "dist/index.js"
  },
  "scripts": {
    "build:native": "cargo build -p tasker-ts && cp \"${CARGO_TARGET_DIR:-../../target}/debug/libtasker_ts.so\" ./libtasker_ts.so",
    "build": "bun build src/index.ts --outdir dist --target bun"
  }
}
EOF

w crates/tasker-ts/src/index.ts <<'EOF'
import { dlopen, FFIType } from "bun:ffi";
import { join } from "node:path";

// The native library sits at the package root, one level above both src/ and dist/.
const libPath = join(import.meta.dir, "..", "libtasker_ts.so");

let lib: ReturnType<typeof open> | undefined;

function open() {
  return dlopen(libPath, {
    tasker_ts_marker: { args: [], returns: FFIType.cstring },
  });
}

export function marker(): string {
  lib ??= open();
  return String(lib.symbols.tasker_ts_marker());
}

if (import.meta.main) {
  console.log(marker());
}
EOF

w crates/tasker-ts/tests/marker.test.ts <<'EOF'
import { expect, test } from "bun:test";
import { marker } from "../src/index";

test("marker", () => {
  expect(marker().startsWith("ts-")).toBe(true);
});
EOF

w crates/tasker-ts/.gitignore <<'EOF'
node_modules/
dist/
*.so
EOF

write_lock 1.0.14
commit base "Initial tasker workspace"

# ---------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------

cat >>README.md <<'EOF'

See `docs/guide.md` for how to build and run the binaries.
EOF
cat >>docs/guide.md <<'EOF'

## Bindings

Ruby, Python and TypeScript bindings live in `crates/tasker-rb`,
`crates/tasker-py` and `crates/tasker-ts`.
EOF
cat >>crates/tasker-ctl/README.md <<'EOF'

Usage: `tasker-ctl`
EOF
commit docs-only "docs: expand README and guide"

replace crates/tasker-ctl/src/main.rs '"ctl-1"' '"ctl-2"'
commit ctl-only "ctl: bump marker"

write_lock 1.0.15
commit lock-change "deps: update itoa to 1.0.15"

replace crates/tasker-shared/src/lib.rs '"shared-1"' '"shared-2"'
commit shared-change "shared: bump marker"

replace crates/tasker-secure/src/lib.rs '"secure-1"' '"secure-2"'
commit secure-only "secure: bump marker"

replace crates/tasker-py/src/lib.rs '"py-1"' '"py-2"'
commit python-only "py: bump marker"

cat >>proto/tasker.proto <<'EOF'

message TaskResult {
  string task_id = 1;
  bool ok = 2;
}
EOF
commit proto-change "proto: add TaskResult"

# ---------------------------------------------------------------------------
# era branches (side branches on base; main is untouched)
# ---------------------------------------------------------------------------

# era_package DIR NAME: writes DIR/Cargo.toml for package NAME, inheriting version,
# edition and publish from the workspace, followed by stdin (extra sections).
era_package() {
  local dir=$1 name=$2
  {
    printf '[package]\nname = "%s"\nversion.workspace = true\nedition.workspace = true\npublish.workspace = true\n' "$name"
    cat
  } | w "$dir/Cargo.toml"
}

# era_lib DIR NAME / era_main DIR: one-line src/lib.rs / src/main.rs.
era_lib() {
  printf '//! %s (fixture stub).\n' "$2" | w "$1/src/lib.rs"
}
era_main() {
  printf 'fn main() {}\n' | w "$1/src/main.rs"
}

# era_start BRANCH: a new branch on base with base's workspace removed.
era_start() {
  g checkout -q -b "$1" base
  g rm -r -q -- crates Cargo.lock docs .cargo
}

# workers_era BRANCH MESSAGE PGMQ CLI RB_PACKAGE RB_LIB PY_PACKAGE TS_PACKAGE TS_LIB TS_FFI
#   PGMQ        tasker-pgmq | pgmq-notify
#   CLI         tasker-ctl | tasker-cli (root crates) | client (bin tasker-cli in tasker-client)
#   PY_PACKAGE  empty: no workers/python
#   TS_PACKAGE  empty: no workers/typescript; TS_FFI is napi | koffi
workers_era() {
  local branch=$1 msg=$2 pgmq=$3 cli=$4 rb_package=$5 rb_lib=$6 py_package=$7 \
    ts_package=$8 ts_lib=$9 ts_ffi=${10} members m core_deps
  era_start "$branch"

  members=(tasker-shared "$pgmq" tasker-client tasker-worker tasker-orchestration)
  [[ $cli == client ]] || members+=("$cli")
  members+=(workers/ruby/ext/tasker_core)
  [[ -z $py_package ]] || members+=(workers/python)
  [[ -z $ts_package ]] || members+=(workers/typescript)
  members+=(workers/rust)
  {
    printf '[workspace]\nresolver = "2"\nmembers = [\n'
    for m in "${members[@]}"; do printf '    "%s",\n' "$m"; done
    printf ']\n\n[workspace.package]\nversion = "0.1.0"\nedition = "2021"\npublish = false\n'
  } | w Cargo.toml

  # --- core crates at the root ---
  era_package tasker-shared tasker-shared </dev/null
  era_lib tasker-shared tasker-shared

  era_package "$pgmq" "$pgmq" </dev/null
  era_lib "$pgmq" "$pgmq"

  core_deps=$(printf 'tasker-shared = { path = "../tasker-shared" }\n%s = { path = "../%s" }\n' "$pgmq" "$pgmq")
  if [[ $cli == client ]]; then
    era_package tasker-client tasker-client <<EOF

[dependencies]
$core_deps

[[bin]]
name = "tasker-cli"
path = "src/bin/tasker-cli.rs"
EOF
    printf 'fn main() {}\n' | w tasker-client/src/bin/tasker-cli.rs
  else
    era_package tasker-client tasker-client <<EOF

[dependencies]
$core_deps
EOF
  fi
  era_lib tasker-client tasker-client

  era_package tasker-worker tasker-worker <<EOF

[features]
test-services = []

[dependencies]
tasker-client = { path = "../tasker-client" }
$core_deps
EOF
  era_lib tasker-worker tasker-worker
  era_main tasker-worker

  era_package tasker-orchestration tasker-orchestration <<EOF

[features]
test-services = []

[dependencies]
$core_deps

[[bin]]
name = "tasker-server"
path = "src/main.rs"
EOF
  era_lib tasker-orchestration tasker-orchestration
  era_main tasker-orchestration

  if [[ $cli != client ]]; then
    era_package "$cli" "$cli" <<EOF

[dependencies]
tasker-client = { path = "../tasker-client" }
$core_deps
EOF
    era_main "$cli"
  fi

  # --- workers/ruby: gem with the extension crate under ext/ ---
  w workers/ruby/Rakefile <<EOF
# Builds the native extension (fixture stub).
task :compile do
  sh "cargo", "build", "-p", "$rb_package"
end

task default: :compile
EOF
  w "workers/ruby/$rb_package.gemspec" <<EOF
Gem::Specification.new do |spec|
  spec.name = "$rb_package"
  spec.version = "0.1.0"
  spec.summary = "Ruby worker for tasker"
  spec.authors = ["Fixture Author"]
  spec.license = "MIT"
  spec.files = Dir["lib/**/*.rb"]
  spec.require_paths = ["lib"]
end
EOF
  w workers/ruby/lib/tasker_core.rb <<EOF
# frozen_string_literal: true

require_relative "tasker_core/$rb_lib"
EOF
  era_package workers/ruby/ext/tasker_core "$rb_package" <<EOF

[lib]
name = "$rb_lib"
crate-type = ["cdylib"]

[dependencies]
tasker-worker = { path = "../../../../tasker-worker" }
EOF
  era_lib workers/ruby/ext/tasker_core "$rb_package"

  # --- workers/python: maturin project ---
  if [[ -n $py_package ]]; then
    w workers/python/pyproject.toml <<EOF
[build-system]
requires = ["maturin>=1.0,<2.0"]
build-backend = "maturin"

[project]
name = "$py_package"
requires-python = ">=3.8"
dynamic = ["version"]

[tool.maturin]
module-name = "${py_package//-/_}"
EOF
    era_package workers/python "$py_package" <<EOF

[lib]
name = "${py_package//-/_}"
crate-type = ["cdylib"]

[dependencies]
tasker-worker = { path = "../../tasker-worker" }
EOF
    era_lib workers/python "$py_package"
  fi

  # --- workers/typescript: napi-rs addon or a cdylib loaded through koffi ---
  if [[ -n $ts_package ]]; then
    case $ts_ffi in
      napi)
        w workers/typescript/package.json <<EOF
{
  "name": "@tasker-systems/tasker",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "main": "dist/index.js",
  "napi": {
    "binaryName": "$ts_lib"
  },
  "scripts": {
    "build:napi": "napi build --platform",
    "build": "tsup"
  },
  "devDependencies": {
    "@napi-rs/cli": "^3.0.0",
    "tsup": "^8.0.0"
  }
}
EOF
        ;;
      koffi)
        w workers/typescript/package.json <<EOF
{
  "name": "@tasker-systems/tasker",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "main": "dist/index.js",
  "scripts": {
    "build": "tsup"
  },
  "dependencies": {
    "koffi": "^2.9.0"
  },
  "devDependencies": {
    "tsup": "^8.0.0"
  }
}
EOF
        ;;
      *) die "internal: unknown TypeScript FFI '$ts_ffi'" ;;
    esac
    era_package workers/typescript "$ts_package" <<EOF

[lib]
name = "$ts_lib"
crate-type = ["cdylib"]

[dependencies]
tasker-worker = { path = "../../tasker-worker" }
EOF
    era_lib workers/typescript "$ts_package"
  fi

  # --- workers/rust: the native Rust worker ---
  era_package workers/rust tasker-worker-rust <<'EOF'

[dependencies]
tasker-worker = { path = "../../tasker-worker" }

[[bin]]
name = "rust-worker"
path = "src/main.rs"
EOF
  era_main workers/rust

  commit "$branch" "$msg"
}

workers_era era-workers-napi "era: workers/ layout, napi-rs TypeScript, tasker-ctl" \
  tasker-pgmq tasker-ctl tasker-rb tasker_rb tasker-py tasker-ts tasker_ts napi
workers_era era-workers-koffi "era: workers/ layout, koffi TypeScript, tasker-ctl" \
  tasker-pgmq tasker-ctl tasker-rb tasker_rb tasker-py tasker-ts tasker_ts koffi
workers_era era-workers-cli "era: workers/ layout, tasker-cli, tasker-worker-* FFI crates" \
  tasker-pgmq tasker-cli tasker-worker-rb tasker_worker_rb tasker-worker-py tasker-worker-ts tasker_worker koffi
workers_era era-workers-early "era: workers/ layout, Ruby and Rust workers only" \
  pgmq-notify client tasker-worker-rb tasker_worker_rb "" "" "" ""
workers_era era-workers-python "era: workers/ layout, Ruby, Python and Rust workers" \
  pgmq-notify client tasker-worker-rb tasker_worker_rb tasker-worker-py "" "" ""

era_start era-unknown
g rm -r -q -- proto migrations .gitignore
w Cargo.toml <<'EOF'
[package]
name = "tasker-core-rs"
version = "0.1.0"
edition = "2021"
publish = false
EOF
era_lib . tasker-core-rs
commit era-unknown "era: a single-crate repository"

# ---------------------------------------------------------------------------
# lock-slice history (side branch lock-slices on main; keyed by the tests, never built:
# its slice-* dependencies are not on crates.io, their checksums are made up)
# ---------------------------------------------------------------------------

# bump_lock NAME FROM TO: changes the version of lock entry NAME.
bump_lock() {
  replace Cargo.lock "name = \"$1\"
version = \"$2\"" "name = \"$1\"
version = \"$3\""
}

g checkout -q -b lock-slices main
cat >>Cargo.toml <<'EOF'

[workspace.dependencies]
slice-ws = { version = "1", features = ["a"] }
slice-ws-unused = "1"
EOF
cat >>crates/tasker-shared/Cargo.toml <<'EOF'
slice-ws.workspace = true

[build-dependencies]
slice-build = "1"
EOF
cat >>crates/tasker-worker/Cargo.toml <<'EOF'

[target.'cfg(unix)'.dependencies]
slice-unix = "1"
EOF
cat >>crates/tasker-pgmq/Cargo.toml <<'EOF'

[dev-dependencies]
slice-dev = "1"
EOF
echo 'slice-py = "1"' >>crates/tasker-py/Cargo.toml
replace Cargo.lock 'name = "tasker-shared"
version = "0.1.0"
dependencies = [
 "itoa",' 'name = "tasker-shared"
version = "0.1.0"
dependencies = [
 "itoa",
 "slice-build",
 "slice-ws",'
replace Cargo.lock 'name = "tasker-pgmq"
version = "0.1.0"' 'name = "tasker-pgmq"
version = "0.1.0"
dependencies = [
 "slice-dev",
]'
replace Cargo.lock ' "tasker-shared",
]

[[package]]
name = "unicode-ident"' ' "tasker-shared",
 "slice-unix",
]

[[package]]
name = "unicode-ident"'
replace Cargo.lock ' "pyo3",' ' "pyo3",
 "slice-py",'
for crate in slice-build slice-dev slice-py slice-unix slice-ws; do
  printf '\n[[package]]\nname = "%s"\nversion = "1.0.0"\nsource = "registry+https://github.com/rust-lang/crates.io-index"\nchecksum = "%064d"\n' "$crate" 0 >>Cargo.lock
done
commit slice-base "lock slices: dependencies of every kind"

bump_lock slice-py 1.0.0 1.0.1
bump_lock slice-dev 1.0.0 1.0.1
replace Cargo.toml 'slice-ws-unused = "1"' 'slice-ws-unused = "2"'
commit slice-outside "deps: bump tasker-py's and a dev-dependency; an unused workspace dependency"

bump_lock slice-build 1.0.0 1.0.1
commit slice-build-dep "deps: bump tasker-shared's build-dependency"

bump_lock slice-unix 1.0.0 1.0.1
commit slice-target-dep "deps: bump tasker-worker's unix-only dependency"

replace Cargo.toml 'features = ["a"]' 'features = ["a", "b"]'
commit slice-feature "deps: one more feature of a workspace dependency"

g checkout -q main

echo "make-fixture: created $(pwd) at $(g rev-parse --short HEAD) (main)"

//! The tools each target kind runs: finding them on PATH before anything is built, their
//! install hints when they are missing, and the version fingerprint that goes into keys
//! (a new compiler must not restore artifacts built by the old one). Fingerprints are
//! memoised per resolved executable and what selects its version ([`crate::toolchain_memo`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::recipe::{Kind, Target};
use crate::toolchain_memo::{self, ToolMemo};

/// Tools a target needs, in the order their fingerprints enter its key: those of its kind
/// (every kind but `command` builds Rust), then the recipe's `tools`.
pub fn required_tools(target: &Target) -> Vec<String> {
    let of_kind: &[&str] = match target.kind {
        Kind::Cargo => &["cargo", "rustc"],
        Kind::Rake => &["cargo", "rustc", "ruby", "rake"],
        Kind::Maturin => &["cargo", "rustc", "python3", "maturin"],
        Kind::Bun => &["cargo", "rustc", "bun"],
        Kind::Command => &[],
    };
    let mut tools: Vec<String> = of_kind.iter().map(|s| s.to_string()).collect();
    for tool in &target.tools {
        if !tools.contains(tool) {
            tools.push(tool.clone());
        }
    }
    tools
}

/// The fingerprints of every tool the given targets need, each probed once, or taken from
/// `memo` while nothing that selects its version changed (see [`crate::toolchain_memo`]).
/// All missing tools are reported together, before any build starts.
pub fn probe(targets: &[Target], memo: &mut ToolMemo) -> Result<BTreeMap<String, String>, ToolchainError> {
    let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for target in targets {
        for tool in required_tools(target) {
            needed.entry(tool).or_default().insert(target.name.clone());
        }
    }
    let mut missing = Vec::new();
    let mut found = BTreeMap::new();
    for (tool, users) in &needed {
        match find_on_path(tool) {
            Some(path) => {
                found.insert(tool.clone(), path);
            }
            None => missing.push(MissingTool {
                tool: tool.clone(),
                hint: install_hint(tool),
                targets: users.iter().cloned().collect::<Vec<_>>().join(", "),
            }),
        }
    }
    if !missing.is_empty() {
        return Err(ToolchainError::Missing(missing));
    }
    let cwd = probe_dir();
    let mut fingerprints = BTreeMap::new();
    let mut to_probe = Vec::new();
    for (tool, path) in &found {
        let stamp = toolchain_memo::stamp(tool, path, probe_args(tool), &cwd);
        match memo.get(&stamp) {
            Some(known) => {
                fingerprints.insert(tool.clone(), known.to_string());
            }
            None => to_probe.push((tool, path, stamp)),
        }
    }
    // Probes run side by side: some tools start slowly (pyenv shims take 0.2 s), and a
    // full cache hit waits for all of them.
    let probed: Vec<(&String, &PathBuf, toolchain_memo::Stamp, Result<String, ToolchainError>)> =
        std::thread::scope(|scope| {
            let running: Vec<_> = to_probe
                .into_iter()
                .map(|(tool, path, stamp)| {
                    let cwd = &cwd;
                    (tool, path, stamp, scope.spawn(move || fingerprint(tool, path, cwd)))
                })
                .collect();
            running
                .into_iter()
                .map(|(tool, path, stamp, probe)| (tool, path, stamp, probe.join().expect("probes do not panic")))
                .collect()
        });
    for (tool, path, stamp, result) in probed {
        let text = result?;
        memo.insert(&stamp, tool, path, &text);
        fingerprints.insert(tool.clone(), text);
    }
    memo.save();
    Ok(fingerprints)
}

/// Probes run outside any checkout so that a rust-toolchain file there cannot pick the
/// compiler; the file itself is a key input.
fn probe_dir() -> PathBuf {
    std::env::temp_dir()
}

fn probe_args(tool: &str) -> &'static [&'static str] {
    match tool {
        "rustc" => &["-vV"],
        "cargo" | "maturin" | "python3" => &["-V"],
        "ruby" => &["-v"],
        _ => &["--version"],
    }
}

/// The fingerprint text of one target: its tools' version outputs, in order.
pub fn target_fingerprint(target: &Target, fingerprints: &BTreeMap<String, String>) -> String {
    required_tools(target)
        .iter()
        .map(|tool| format!("{tool}: {}", fingerprints.get(tool).map(String::as_str).unwrap_or("?")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn fingerprint(tool: &str, path: &Path, cwd: &Path) -> Result<String, ToolchainError> {
    let args = probe_args(tool);
    let output = Command::new(path)
        .args(args)
        .current_dir(cwd)
        .output()
        .map_err(|e| ToolchainError::Broken { tool: tool.into(), message: e.to_string() })?;
    if !output.status.success() {
        return Err(ToolchainError::Broken {
            tool: tool.into(),
            message: format!("`{tool} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()),
        });
    }
    let mut text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if text.is_empty() {
        text = String::from_utf8_lossy(&output.stderr).trim().to_string();
    }
    Ok(text)
}

/// The first executable `name` on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        candidate.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}

fn install_hint(tool: &str) -> String {
    match tool {
        "cargo" | "rustc" => "install Rust with rustup (https://rustup.rs) and put ~/.cargo/bin on PATH".into(),
        "ruby" => "install Ruby: `apt-get install ruby ruby-dev` (or scripts/install-toolchains.sh)".into(),
        "rake" => "install rake: `apt-get install rake` (or scripts/install-toolchains.sh)".into(),
        "python3" => "install Python 3: `apt-get install python3 python3-venv`".into(),
        "maturin" => "install maturin: `pip install maturin` (or scripts/install-toolchains.sh)".into(),
        "bun" => "install bun: `npm install -g bun` (or scripts/install-toolchains.sh)".into(),
        "bundle" => "install Bundler (`gem install bundler`) with a Ruby the gem supports".into(),
        "clang" | "mold" => {
            format!("install {tool}: `apt-get install clang mold` (tasker-core's .cargo/config.toml links with them)")
        }
        "protoc" => "install protoc: `apt-get install protobuf-compiler libprotobuf-dev`".into(),
        other => format!("install `{other}` and make sure it is on PATH"),
    }
}

#[derive(Debug, Clone)]
pub struct MissingTool {
    pub tool: String,
    pub hint: String,
    pub targets: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("{}", missing_message(.0))]
    Missing(Vec<MissingTool>),
    #[error("`{tool}` is on PATH but does not run: {message}")]
    Broken { tool: String, message: String },
}

fn missing_message(missing: &[MissingTool]) -> String {
    let lines: Vec<String> =
        missing.iter().map(|m| format!("`{}` is not on PATH (needed by {}): {}", m.tool, m.targets, m.hint)).collect();
    format!("missing toolchain, nothing was built:\n  {}", lines.join("\n  "))
}

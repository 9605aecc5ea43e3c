//! The build stage: run a target's commands in the checkout, stream their output to a log,
//! and collect the declared outputs. Targets run concurrently under a `--jobs` bound; one
//! target's failure does not stop the others.

mod outputs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::recipe::{Kind, Target};

pub use outputs::{collect_outputs, expand_output};

/// Where a build runs.
#[derive(Debug, Clone)]
pub struct BuildDirs {
    /// The checkout of the commit.
    pub work: PathBuf,
    /// The repository's persistent cargo target dir (`CARGO_TARGET_DIR`).
    pub cargo_target: PathBuf,
}

/// What a successful build left: archive path -> file on disk.
#[derive(Debug)]
pub struct BuiltTarget {
    pub files: BTreeMap<String, PathBuf>,
    pub duration: Duration,
}

/// Runs `target`'s commands, then collects its outputs. Output is appended to `log`.
pub async fn build_target(target: &Target, dirs: &BuildDirs, log: &Path) -> Result<BuiltTarget, BuildError> {
    let started = Instant::now();
    let workdir = dirs.work.join(&target.workdir);
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(|source| BuildError::Io { path: parent.into(), source })?;
    }
    // cargo refreshes its own outputs; anything else could leave a stale file matching a glob.
    if target.kind != Kind::Cargo {
        for output in &target.outputs {
            for stale in expand_output(&output.path, &workdir, &dirs.cargo_target)? {
                remove_path(&stale).map_err(|source| BuildError::Io { path: stale.clone(), source })?;
            }
        }
    }
    let log_file = std::fs::File::create(log).map_err(|source| BuildError::Io { path: log.into(), source })?;
    for command in &target.commands {
        use std::io::Write;
        let mut header = log_file.try_clone().map_err(|source| BuildError::Io { path: log.into(), source })?;
        let _ = writeln!(header, "$ {command}");
        let stdout = log_file.try_clone().map_err(|source| BuildError::Io { path: log.into(), source })?;
        let stderr = log_file.try_clone().map_err(|source| BuildError::Io { path: log.into(), source })?;
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&workdir)
            .envs(&target.env)
            .env("CARGO_TARGET_DIR", &dirs.cargo_target)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .status()
            .await
            .map_err(|source| BuildError::Io { path: workdir.clone(), source })?;
        if !status.success() {
            return Err(BuildError::Failed {
                target: target.name.clone(),
                command: command.clone(),
                status: status.code().map_or_else(|| "killed by a signal".to_string(), |c| format!("exit code {c}")),
                log: log.into(),
                tail: tail(log, 20),
            });
        }
    }
    let files = collect_outputs(target, &workdir, &dirs.cargo_target)?;
    Ok(BuiltTarget { files, duration: started.elapsed() })
}

fn remove_path(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The last `n` lines of a log, for the error message.
fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("target {target} failed: `{command}` ended with {status}\n--- last lines of {} ---\n{tail}\n--- full log: {} ---", log.display(), log.display())]
    Failed { target: String, command: String, status: String, log: PathBuf, tail: String },
    #[error(
        "target {target}: output {pattern:?} matched nothing after the build; check the recipe's [[target.output]] paths"
    )]
    MissingOutput { target: String, pattern: String },
    #[error("target {target}: outputs {first} and {second} would both land at {path} in the artifact layout")]
    OutputClash { target: String, first: String, second: String, path: String },
    #[error("build i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid output pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
}

//! The build stage: run a target's commands in the checkout, stream their output to a log,
//! and collect the declared outputs. Targets run concurrently under a `--jobs` bound; one
//! target's failure does not stop the others.

mod lock_watch;
mod outputs;
mod registry;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::recipe::{Kind, Target};

pub use outputs::{collect_outputs, expand_output};
pub use registry::expand_env;

/// Where a build runs.
#[derive(Debug, Clone)]
pub struct BuildDirs {
    /// The checkout of the commit.
    pub work: PathBuf,
    /// The repository's persistent cargo target dir (`CARGO_TARGET_DIR`).
    pub cargo_target: PathBuf,
    /// Paths of the commit's files: never cleared as stale outputs.
    pub tracked: Arc<BTreeSet<String>>,
}

/// What a successful build left: archive path -> file on disk.
#[derive(Debug)]
pub struct BuiltTarget {
    pub files: BTreeMap<String, PathBuf>,
    /// Time spent building, waits for cargo's lock excluded.
    pub duration: Duration,
    /// Time cargo spent waiting for another cargo's lock on the shared target dir.
    pub waited: Duration,
}

/// Runs `target`'s commands with `env` (its env with placeholders expanded), then collects
/// its outputs. The commands' output goes to `log`. `on_cargo_lock(true)` is called when a
/// command's cargo starts waiting for another cargo's lock (the target dir is shared by every
/// cargo target of the repository), `on_cargo_lock(false)` when it goes on.
pub async fn build_target(
    target: &Target,
    env: &BTreeMap<String, String>,
    dirs: &BuildDirs,
    log: &Path,
    on_cargo_lock: &(dyn Fn(bool) + Send + Sync),
) -> Result<BuiltTarget, BuildError> {
    let started = Instant::now();
    let workdir = dirs.work.join(&target.workdir);
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(|source| BuildError::Io { path: parent.into(), source })?;
    }
    // cargo refreshes its own outputs; anything else could leave a stale file from an
    // earlier build matching a glob. Files of the commit itself are never stale.
    if target.kind != Kind::Cargo {
        for output in &target.outputs {
            for matched in expand_output(&output.path, &workdir, &dirs.cargo_target)? {
                clear_untracked(&matched, dirs)?;
            }
        }
    }
    let log_file = std::fs::File::create(log).map_err(|source| BuildError::Io { path: log.into(), source })?;
    let mut watch = lock_watch::LockWatch::new(log, on_cargo_lock);
    for command in &target.commands {
        use std::io::Write;
        let mut header = log_file.try_clone().map_err(|source| BuildError::Io { path: log.into(), source })?;
        let _ = writeln!(header, "$ {command}");
        let stdout = log_file.try_clone().map_err(|source| BuildError::Io { path: log.into(), source })?;
        let stderr = log_file.try_clone().map_err(|source| BuildError::Io { path: log.into(), source })?;
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&workdir)
            .envs(env)
            .env("CARGO_TARGET_DIR", &dirs.cargo_target)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BuildError::Io { path: workdir.clone(), source })?;
        let status =
            watch.until_exit(&mut child).await.map_err(|source| BuildError::Io { path: workdir.clone(), source })?;
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
    let waited = watch.waited();
    Ok(BuiltTarget { files, duration: started.elapsed().saturating_sub(waited), waited })
}

/// Removes `path` (a file, or every file under a dir) unless it belongs to the commit.
fn clear_untracked(path: &Path, dirs: &BuildDirs) -> Result<(), BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    for entry in walkdir::WalkDir::new(path).contents_first(true) {
        let entry = entry.map_err(|e| BuildError::Io { path: path.into(), source: e.into() })?;
        let tracked = entry.path().strip_prefix(&dirs.work).ok().and_then(|rel| rel.to_str()).is_some_and(|rel| {
            dirs.tracked.contains(rel)
                || dirs.tracked.range(format!("{rel}/")..).next().is_some_and(|p| p.starts_with(&format!("{rel}/")))
        });
        if tracked {
            continue;
        }
        if entry.file_type().is_dir() {
            std::fs::remove_dir(entry.path()).map_err(io(entry.path()))?;
        } else {
            std::fs::remove_file(entry.path()).map_err(io(entry.path()))?;
        }
    }
    Ok(())
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
    #[error("cannot resolve {{registry:{spec}}} in the recipe's env: {message}")]
    Registry { spec: String, message: String },
    #[error("invalid output pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
}

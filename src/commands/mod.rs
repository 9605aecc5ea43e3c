//! One file per subcommand: argument handling, then one call into the pipeline
//! ([`crate::engine`]) or a side tool ([`crate::tools`]). The command layer also owns what a
//! process has once: its tokio [`Runtime`], made by [`crate::run`] and passed down (no global).

pub mod affected;
pub mod bundle;
pub mod cache;
pub mod core;
pub mod docs;
pub mod explain;
pub mod key;
pub mod key_range;
pub mod recipe;
pub mod release;
pub mod restore;
pub mod upstream;

use std::sync::OnceLock;

use crate::cache::remote::RemoteConfig;
use crate::cli::{RemoteArgs, RevArgs};
use crate::engine::source::Rev;
use crate::error::Error;

/// The [`crate::engine::Run`] of `core` and `restore`, which take the same flags under the
/// same names (`rev`, `recipe`, `targets`, `out`, `link_mode`, `max_entry_size`, `format`) in
/// two clap structs that differ in what else they take. One literal for both, so that a new
/// field of `Run` is read the same way by each. `$remote` is the [`remote_config`] of the args.
macro_rules! run_of {
    ($args:expr, $remote:expr) => {
        $crate::engine::Run {
            rev: $crate::commands::rev(&$args.rev)?,
            repo: &$args.rev.repo.url,
            offline: $args.rev.repo.offline,
            recipe: $args.recipe.as_deref(),
            targets: &$args.targets,
            out: &$args.out,
            remote: $remote,
            link_mode: $args.link_mode,
            max_entry_size: $args.max_entry_size,
            json: $args.format.is_json(),
        }
    };
}
pub(crate) use run_of;

/// The process's one tokio runtime, owned by [`crate::run`] and handed to the commands that
/// need one; it starts on first use, so commands without network or builds never start it.
/// The builds, the remote cache, registry lookups and release downloads all run on it. Two
/// workers: the builds are child processes and the network work is I/O bound.
#[derive(Default)]
pub struct Runtime(OnceLock<tokio::runtime::Runtime>);

impl Runtime {
    pub fn get(&self) -> &tokio::runtime::Runtime {
        self.0.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("tbuild")
                .enable_all()
                .build()
                .expect("a tokio runtime")
        })
    }
}

/// `--sha`/`--path` (with `--repo`, `--offline`) as the engine takes them.
pub fn rev(args: &RevArgs) -> Result<Rev<'_>, Error> {
    Rev::new(args.sha.as_deref(), args.path.as_deref(), &args.repo.url, args.repo.offline)
}

/// The remote flags as the cache takes them.
pub fn remote_config(args: &RemoteArgs) -> RemoteConfig {
    RemoteConfig {
        remote: args.remote.clone(),
        s3_endpoint: args.s3_endpoint.clone(),
        remote_required: args.remote_required,
        remote_read_only: args.remote_read_only,
        remote_timeout: args.remote_timeout,
    }
}

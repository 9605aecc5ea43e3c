//! One file per subcommand: argument handling, then one call into the pipeline
//! ([`crate::engine`]) or a side tool ([`crate::tools`]). The command layer also owns what a
//! process has once: its tokio [`runtime`].

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

/// The process's one tokio runtime, started by the first command that needs it: the builds,
/// the remote cache, registry lookups and release downloads all run on it. Two workers: the
/// builds are child processes and the network work is I/O bound.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tbuild")
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
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

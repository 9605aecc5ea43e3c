//! `tbuild restore`: the CI restore step ([`crate::engine::restore_only`]).

use std::sync::Arc;

use super::Runtime;
use crate::cache::LocalCache;
use crate::cli::RestoreArgs;
use crate::engine::{self, Run};
use crate::error::Error;
use crate::report::Reporter;

pub fn run(args: &RestoreArgs, cache: &LocalCache, runtime: &Runtime, reporter: Arc<Reporter>) -> Result<(), Error> {
    let remote = super::remote_config(&args.remote);
    let run = Run {
        rev: super::rev(&args.rev)?,
        repo: &args.rev.repo.url,
        offline: args.rev.repo.offline,
        recipe: args.recipe.as_deref(),
        targets: &args.targets,
        out: &args.out,
        remote: &remote,
        link_mode: args.link_mode,
        max_entry_size: args.max_entry_size,
        json: args.format.is_json(),
    };
    engine::restore_only(&run, args.fail_on_cache_miss, cache, runtime.get().handle(), reporter)
}

//! `tbuild restore`: the CI restore step ([`crate::engine::restore_only`]).

use std::sync::Arc;

use super::Runtime;
use crate::cache::LocalCache;
use crate::cli::RestoreArgs;
use crate::engine;
use crate::error::Error;
use crate::report::Reporter;

pub fn run(args: &RestoreArgs, cache: &LocalCache, runtime: &Runtime, reporter: Arc<Reporter>) -> Result<(), Error> {
    let remote = super::remote_config(&args.remote);
    let run = super::run_of!(args, &remote);
    engine::restore_only(&run, args.fail_on_cache_miss, cache, runtime.get().handle(), reporter)
}

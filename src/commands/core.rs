//! `tbuild core`: a release's assets when `--prefer-release` names a matching one, else the
//! pipeline ([`crate::engine::core`]).

use std::sync::Arc;

use super::Runtime;
use crate::cache::LocalCache;
use crate::cli::CoreArgs;
use crate::engine::{self, Builds};
use crate::error::Error;
use crate::report::Reporter;

pub fn run(args: &CoreArgs, cache: &LocalCache, runtime: &Runtime, reporter: Arc<Reporter>) -> Result<(), Error> {
    if let Some(tag) = &args.release.prefer_release
        && super::release::prefer_release(args, tag, runtime, &reporter)?
    {
        return Ok(());
    }
    let remote = super::remote_config(&args.remote);
    let run = super::run_of!(args, &remote);
    let builds = Builds { jobs: args.jobs as usize, warm: &args.warm, timings: args.timings.as_deref() };
    engine::core(&run, &builds, cache, runtime.get().handle(), reporter)
}

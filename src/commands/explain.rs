use crate::cache::LocalCache;
use crate::cli::ExplainArgs;
use crate::error::Error;
use crate::report::Reporter;
pub fn run(_args: &ExplainArgs, _cache: &LocalCache, _reporter: &Reporter) -> Result<(), Error> {
    todo!()
}

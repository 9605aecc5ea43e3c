//! `tbuild affected`: which CI jobs a change needs.

use crate::cli::{AffectedArgs, AffectedFormat};
use crate::error::Error;
use crate::tools::affected::{AffectedError, default_rules, load_rules, select};
use crate::tools::github::GithubEnv;

pub fn run(args: &AffectedArgs) -> Result<(), Error> {
    let rules = match &args.rules {
        Some(path) => load_rules(path)?,
        None => default_rules(),
    };
    let selection = select(&args.repo, &args.base, &args.head, &rules)?;
    match args.format.get() {
        AffectedFormat::Json => println!("{}", serde_json::to_string_pretty(&selection).expect("selections serialise")),
        AffectedFormat::Github => {
            let lines = selection.github_outputs();
            if !GithubEnv::from_env().append_outputs(&lines).map_err(AffectedError::Output)? {
                print!("{lines}");
            }
        }
    }
    Ok(())
}

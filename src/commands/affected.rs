//! `tbuild affected`: which CI jobs a change needs.

use std::io::Write;

use crate::cli::{AffectedArgs, AffectedFormat};
use crate::error::Error;
use crate::tools::affected::{AffectedError, default_rules, load_rules, select};

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
            match std::env::var_os("GITHUB_OUTPUT") {
                Some(path) => {
                    let path = std::path::PathBuf::from(path);
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(|source| AffectedError::Output { path: path.clone(), source })?;
                    file.write_all(lines.as_bytes()).map_err(|source| AffectedError::Output { path, source })?;
                }
                None => print!("{lines}"),
            }
        }
    }
    Ok(())
}

//! `tbuild key`: each target's key and input count, for a commit or a checkout on disk.

use serde::Serialize;

use crate::cache::LocalCache;
use crate::cli::{KeyArgs, KeyFormat};
use crate::engine::plan;
use crate::error::Error;
use crate::key::KeyInput;
use crate::report::Reporter;
use crate::tools::github::{self, GithubEnv};

#[derive(Serialize)]
struct KeyReport<'a> {
    target: &'a str,
    key: &'a str,
    inputs: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<&'a [KeyInput]>,
}

pub fn run(args: &KeyArgs, cache: &LocalCache, reporter: &Reporter, verbose: bool) -> Result<(), Error> {
    if let Some(range) = &args.range {
        if args.format.get() == KeyFormat::Github {
            return Err(Error::Usage("--format github writes one commit's keys; with --range use text or json".into()));
        }
        return super::key_range::run(args, range, cache, reporter);
    }
    let planned =
        plan::load(cache, super::rev(&args.rev)?, args.recipe.as_deref(), &args.targets, reporter, |_, _, _| {})?
            .targets;
    let format = args.format.get();
    if format == KeyFormat::Github {
        let keys = planned.iter().map(|p| (p.target.name.clone(), p.key.clone())).collect();
        let outputs = github::key_outputs(&keys);
        if GithubEnv::from_env().write_outputs(&outputs)? {
            reporter.info(&format!("wrote {} keys to $GITHUB_OUTPUT", planned.len()));
        } else {
            print!("{}", outputs.render());
        }
    } else if format == KeyFormat::Json {
        let reports: Vec<KeyReport> = planned
            .iter()
            .map(|p| KeyReport {
                target: &p.target.name,
                key: &p.key,
                inputs: p.inputs.len(),
                files: verbose.then_some(p.inputs.as_slice()),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&reports).expect("reports serialise"));
    } else {
        // Columns: names padded to the longest, keys are all one length, counts right-aligned.
        let name_width = planned.iter().map(|p| p.target.name.len()).max().unwrap_or(0);
        let count_width = planned.iter().map(|p| p.inputs.len().to_string().len()).max().unwrap_or(0);
        for p in &planned {
            println!("{:<name_width$}  {}  {:>count_width$} inputs", p.target.name, p.key, p.inputs.len());
            if verbose {
                for input in &p.inputs {
                    println!("    {:o} {} {}", input.mode, input.content, input.path);
                }
            }
        }
    }
    Ok(())
}

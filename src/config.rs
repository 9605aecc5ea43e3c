//! The config file: settings a machine keeps for every run, so that a CI image or a
//! developer's laptop names its remote cache once instead of on every command line.
//!
//! It is read from `TBUILD_CONFIG` when set (then it must exist), else from
//! `$XDG_CONFIG_HOME/tbuild/config.toml` or `~/.config/tbuild/config.toml` when present.
//! Flags and their environment variables win over it: the file fills only what they left
//! unset. Unknown keys are errors, so a typo never silently means "no remote".
//!
//! ```toml
//! [remote]
//! url = "s3://ci-cache/tasker"      # as --remote
//! s3_endpoint = "http://minio:9000" # as --s3-endpoint
//! read_only = false                 # as --remote-read-only
//! required = false                  # as --remote-required
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::RemoteArgs;
use crate::error::Error;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub remote: RemoteConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    pub url: Option<String>,
    pub s3_endpoint: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub required: bool,
}

impl RemoteConfig {
    /// Fills what the command line and the environment left unset.
    pub fn apply(&self, args: &mut RemoteArgs) {
        if args.remote.is_none() {
            args.remote.clone_from(&self.url);
        }
        if args.s3_endpoint.is_none() {
            args.s3_endpoint.clone_from(&self.s3_endpoint);
        }
        args.remote_read_only |= self.read_only;
        args.remote_required |= self.required;
    }
}

/// The config file in effect, or the default (empty) config when there is none.
pub fn load() -> Result<Config, Error> {
    let explicit = std::env::var_os("TBUILD_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from);
    let path = match explicit {
        Some(path) if !path.is_file() => {
            return Err(Error::Usage(format!(
                "TBUILD_CONFIG names {}, which is not a file; fix the path or unset TBUILD_CONFIG",
                path.display()
            )));
        }
        Some(path) => path,
        None => match default_path().filter(|p| p.is_file()) {
            Some(path) => path,
            None => return Ok(Config::default()),
        },
    };
    parse(&path)
}

fn parse(path: &Path) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Error::Usage(format!("cannot read the config file {}: {err}", path.display())))?;
    toml::from_str(&text).map_err(|err| {
        Error::Usage(format!(
            "malformed config file {}: {}; fix it or set TBUILD_CONFIG to another",
            path.display(),
            err.message()
        ))
    })
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("tbuild").join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_and_the_file_fills_the_rest() {
        let config: Config =
            toml::from_str("[remote]\nurl = \"s3://b/p\"\ns3_endpoint = \"http://m:9000\"\nread_only = true\n")
                .unwrap();
        let mut unset = RemoteArgs::default();
        config.remote.apply(&mut unset);
        assert_eq!(unset.remote.as_deref(), Some("s3://b/p"));
        assert_eq!(unset.s3_endpoint.as_deref(), Some("http://m:9000"));
        assert!(unset.remote_read_only && !unset.remote_required);
        let mut given = RemoteArgs { remote: Some("http://h/c".into()), ..RemoteArgs::default() };
        config.remote.apply(&mut given);
        assert_eq!(given.remote.as_deref(), Some("http://h/c"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("[remote]\nurll = \"x\"\n").is_err());
        assert!(toml::from_str::<Config>("[remot]\nurl = \"x\"\n").is_err());
    }
}

//! `{registry:NAME@VERSION}` in a recipe's env: the absolute dir of that crate's source in
//! cargo's registry, downloaded by cargo if needed. It lets a recipe point a build script at a
//! file that a registry crate ships, e.g. the Swagger UI zip inside `utoipa-swagger-ui-vendored`,
//! so that `utoipa-swagger-ui`'s build script needs no download from the internet. The key
//! holds the placeholder, not the path: registry crates are immutable per version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::BuildError;

const OPEN: &str = "{registry:";

/// `env` with every `{registry:NAME@VERSION}` replaced by that crate's source dir.
pub fn expand_env(env: &BTreeMap<String, String>, offline: bool) -> Result<BTreeMap<String, String>, BuildError> {
    let mut resolved: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (name, value) in env {
        let mut text = value.clone();
        while let Some(start) = text.find(OPEN) {
            let end = text[start..].find('}').map(|e| start + e).ok_or_else(|| BuildError::Registry {
                spec: text[start..].to_string(),
                message: "unterminated placeholder (missing `}`)".into(),
            })?;
            let spec = text[start + OPEN.len()..end].to_string();
            let dir = match resolved.get(&spec) {
                Some(dir) => dir.clone(),
                None => {
                    let dir = crate_dir(&spec, offline)?;
                    resolved.insert(spec.clone(), dir.clone());
                    dir
                }
            };
            text.replace_range(start..=end, &dir.to_string_lossy());
        }
        out.insert(name.clone(), text);
    }
    Ok(out)
}

/// Asks cargo where `NAME@VERSION` is unpacked, through a throwaway package depending on it.
fn crate_dir(spec: &str, offline: bool) -> Result<PathBuf, BuildError> {
    let err = |message: String| BuildError::Registry { spec: spec.to_string(), message };
    let (name, version) = spec.split_once('@').ok_or_else(|| err("expected NAME@VERSION".into()))?;
    let probe = tempfile::tempdir().map_err(|e| err(e.to_string()))?;
    let manifest = format!(
        "[package]\nname = \"tbuild-registry-probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[dependencies]\n{name} = \"={version}\"\n"
    );
    std::fs::create_dir_all(probe.path().join("src")).map_err(|e| err(e.to_string()))?;
    std::fs::write(probe.path().join("Cargo.toml"), manifest).map_err(|e| err(e.to_string()))?;
    std::fs::write(probe.path().join("src/lib.rs"), "").map_err(|e| err(e.to_string()))?;
    let mut command = cargo_metadata::MetadataCommand::new();
    command.manifest_path(probe.path().join("Cargo.toml"));
    if offline {
        command.other_options(vec!["--offline".to_string()]);
    }
    let metadata = command.exec().map_err(|e| {
        err(match e {
            cargo_metadata::Error::CargoMetadata { stderr } => stderr.trim().to_string(),
            other => other.to_string(),
        })
    })?;
    metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == name && p.version.to_string() == version)
        .and_then(|p| p.manifest_path.parent())
        .map(|dir| dir.as_std_path().to_path_buf())
        .ok_or_else(|| err("cargo resolved the probe without it".into()))
}

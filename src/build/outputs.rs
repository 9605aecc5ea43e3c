//! Output patterns: `${CARGO_TARGET_DIR}` expansion, globbing, and where each match lands in
//! the artifact layout (`<artifact_dir>/<dest>/<name>`, a matched directory with its tree).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::GlobBuilder;

use super::BuildError;
use crate::recipe::Target;

const TARGET_DIR_VAR: &str = "${CARGO_TARGET_DIR}";

/// The existing paths `pattern` matches: relative patterns are taken from `workdir`.
pub fn expand_output(pattern: &str, workdir: &Path, cargo_target: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let (base, rest) = match pattern.strip_prefix(TARGET_DIR_VAR) {
        Some(rest) => (cargo_target.to_path_buf(), rest.trim_start_matches('/')),
        None => (workdir.to_path_buf(), pattern),
    };
    let is_glob = |c: &str| c.contains(['*', '?', '[', '{']);
    let components: Vec<&str> = rest.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let literal_len = components.iter().position(|c| is_glob(c)).unwrap_or(components.len());
    let literal: PathBuf = components[..literal_len].iter().collect();
    let root = base.join(literal);
    if literal_len == components.len() {
        return Ok(if std::fs::symlink_metadata(&root).is_ok() { vec![root] } else { vec![] });
    }
    let glob = components[literal_len..].join("/");
    let matcher = GlobBuilder::new(&glob)
        .literal_separator(true)
        .build()
        .map_err(|e| BuildError::Pattern { pattern: pattern.into(), message: e.kind().to_string() })?
        .compile_matcher();
    let depth = components.len() - literal_len;
    let mut found = Vec::new();
    let walk = walkdir::WalkDir::new(&root).min_depth(1).sort_by_file_name();
    let walk = if glob.contains("**") { walk } else { walk.max_depth(depth) };
    for entry in walk.into_iter().filter_map(Result::ok) {
        let rel = entry.path().strip_prefix(&root).expect("walk stays under its root");
        if matcher.is_match(rel) {
            found.push(entry.path().to_path_buf());
        }
    }
    Ok(found)
}

/// Every output file of a built target, by its path in the artifact layout.
pub fn collect_outputs(
    target: &Target,
    workdir: &Path,
    cargo_target: &Path,
) -> Result<BTreeMap<String, PathBuf>, BuildError> {
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for output in &target.outputs {
        let matches = expand_output(&output.path, workdir, cargo_target)?;
        if matches.is_empty() {
            return Err(BuildError::MissingOutput { target: target.name.clone(), pattern: output.path.clone() });
        }
        let dest: Vec<&str> = [target.artifact_dir.as_str(), output.dest.as_str()]
            .into_iter()
            .flat_map(|d| d.split('/'))
            .filter(|c| !c.is_empty())
            .collect();
        for matched in matches {
            let name = matched.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let mut add = |archive_path: String, file: PathBuf| match files.get(&archive_path) {
                Some(first) if *first != file => Err(BuildError::OutputClash {
                    target: target.name.clone(),
                    first: first.display().to_string(),
                    second: file.display().to_string(),
                    path: archive_path,
                }),
                _ => {
                    files.insert(archive_path, file);
                    Ok(())
                }
            };
            let is_dir = std::fs::symlink_metadata(&matched).map(|m| m.is_dir()).unwrap_or(false);
            if !is_dir {
                add(join(&dest, &name), matched)?;
                continue;
            }
            for entry in walkdir::WalkDir::new(&matched).sort_by_file_name().into_iter() {
                let entry = entry.map_err(|e| BuildError::Io { path: matched.clone(), source: e.into() })?;
                if entry.file_type().is_dir() {
                    continue;
                }
                let rel = entry.path().strip_prefix(&matched).expect("walk stays under its root");
                add(join(&dest, &format!("{name}/{}", rel.to_string_lossy())), entry.path().to_path_buf())?;
            }
        }
    }
    Ok(files)
}

fn join(dest: &[&str], rest: &str) -> String {
    let mut parts: Vec<&str> = dest.to_vec();
    parts.push(rest);
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Recipe;

    #[test]
    fn outputs_land_in_the_artifact_layout() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work/pkg");
        let cargo = dir.path().join("target");
        std::fs::create_dir_all(work.join("dist/chunks")).unwrap();
        std::fs::create_dir_all(cargo.join("wheels")).unwrap();
        std::fs::write(work.join("dist/index.js"), "x").unwrap();
        std::fs::write(work.join("dist/chunks/a.js"), "x").unwrap();
        std::fs::write(work.join("package.json"), "{}").unwrap();
        std::fs::write(cargo.join("wheels/p-1.whl"), "w").unwrap();
        std::fs::write(cargo.join("wheels/p-1.tar.gz"), "s").unwrap();
        let recipe = Recipe::parse(
            r#"
            [[target]]
            name = "ts"
            kind = "command"
            artifact_dir = "tasker-core-typescript"
            commands = ["true"]
            [[target.output]]
            path = "dist"
            [[target.output]]
            path = "package.json"
            [[target.output]]
            path = "${CARGO_TARGET_DIR}/wheels/*.whl"
            dest = "wheels"
            "#,
            "t",
        )
        .unwrap();
        let files = collect_outputs(&recipe.targets[0], &work, &cargo).unwrap();
        assert_eq!(
            files.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "tasker-core-typescript/dist/chunks/a.js",
                "tasker-core-typescript/dist/index.js",
                "tasker-core-typescript/package.json",
                "tasker-core-typescript/wheels/p-1.whl",
            ]
        );
        let mut missing = recipe.targets[0].clone();
        missing.outputs[0].path = "build/*.node".into();
        let err = collect_outputs(&missing, &work, &cargo).unwrap_err().to_string();
        assert!(err.contains("build/*.node"), "{err}");
    }
}

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;
use crate::recipe::WorkspacePackage;

fn file() -> Entry {
    Entry::File { executable: false, blob: None }
}

fn entries(paths: &[&str]) -> BTreeMap<String, Entry> {
    paths.iter().map(|p| (p.to_string(), file())).collect()
}

fn graph() -> WorkspaceGraph {
    let pkg = |dir: &str, deps: &[&str]| WorkspacePackage {
        dir: dir.into(),
        path_deps: deps.iter().map(|d| d.to_string()).collect(),
    };
    WorkspaceGraph {
        packages: [
            ("tasker-ctl".to_string(), pkg("crates/ctl", &["crates/shared"])),
            ("tasker-shared".to_string(), pkg("crates/shared", &[])),
            ("tasker-secure".to_string(), pkg("crates/secure", &[])),
            ("inner".to_string(), pkg("crates/shared/inner", &[])),
        ]
        .into_iter()
        .collect(),
    }
}

fn target(packages: &[&str]) -> Target {
    let recipe = recipe();
    let mut t = recipe.targets[0].clone();
    t.packages = packages.iter().map(|p| p.to_string()).collect();
    t.resolved(&recipe)
}

fn recipe() -> Recipe {
    Recipe::parse(&format!("global_inputs = [\"proto/**\"]\n{}", crate::recipe::MINIMAL), "test").unwrap()
}

#[test]
fn inputs_are_the_closure_plus_globals_minus_excludes() {
    let mut tree = entries(&[
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "README.md",
        "docs/guide.md",
        "proto/a.proto",
        "crates/ctl/Cargo.toml",
        "crates/ctl/src/main.rs",
        "crates/ctl/README.md",
        "crates/ctl/tests/it.rs",
        "crates/ctl/benches/b.rs",
        "crates/ctl/examples/e.rs",
        "crates/shared/Cargo.toml",
        "crates/shared/src/lib.rs",
        "crates/shared/src/docs/notes.md",
        "crates/shared/inner/Cargo.toml",
        "crates/shared/inner/src/lib.rs",
        "crates/secure/src/lib.rs",
        "migrations/1.sql",
        "migrations/sub/2.sql",
    ]);
    tree.insert("crates/shared/migrations".into(), Entry::Symlink { target: "../../migrations".into() });
    let got = select_inputs(&tree, Some(&graph()), &recipe(), &target(&["tasker-ctl"])).unwrap();
    let want = [
        ".cargo/config.toml",
        "Cargo.lock",
        "Cargo.toml",
        "crates/ctl/Cargo.toml",
        "crates/ctl/src/main.rs",
        "crates/shared/Cargo.toml",
        "crates/shared/migrations",
        "crates/shared/src/lib.rs",
        "migrations/1.sql",
        "migrations/sub/2.sql",
        "proto/a.proto",
    ];
    assert_eq!(got.iter().map(String::as_str).collect::<Vec<_>>(), want);
}

#[test]
fn target_excludes_and_extra_inputs_apply() {
    let tree = entries(&["Cargo.toml", "crates/ctl/src/main.rs", "crates/ctl/src/gen.rs", "tools/x.sh"]);
    let mut t = target(&["tasker-ctl"]);
    t.exclude = vec!["crates/ctl/src/gen.rs".into()];
    t.inputs = vec!["tools/*.sh".into()];
    let got = select_inputs(&tree, Some(&graph()), &recipe(), &t).unwrap();
    assert_eq!(
        got.iter().map(String::as_str).collect::<Vec<_>>(),
        ["Cargo.toml", "crates/ctl/src/main.rs", "tools/x.sh"]
    );
}

#[test]
fn escaping_and_looping_symlinks_are_inputs_but_not_followed() {
    let mut tree = entries(&["Cargo.toml", "crates/ctl/src/main.rs"]);
    tree.insert("crates/ctl/out".into(), Entry::Symlink { target: "../../../etc".into() });
    tree.insert("crates/ctl/abs".into(), Entry::Symlink { target: "/etc/passwd".into() });
    tree.insert("crates/ctl/self".into(), Entry::Symlink { target: ".".into() });
    let got = select_inputs(&tree, Some(&graph()), &recipe(), &target(&["tasker-ctl"])).unwrap();
    assert_eq!(got.len(), 5, "{got:?}");
}

#[test]
fn a_bad_glob_is_a_recipe_error() {
    let tree = entries(&["Cargo.toml"]);
    let mut t = target(&["tasker-ctl"]);
    t.inputs = vec!["src/[".into()];
    let err = select_inputs(&tree, Some(&graph()), &recipe(), &t).unwrap_err().to_string();
    assert!(err.contains("src/["), "{err}");
}

fn key_of(dir: &std::path::Path, t: &Target, toolchain: &str, env: &[(String, Option<String>)]) -> String {
    let tree = Tree::from_dir(dir.to_path_buf()).unwrap();
    let inputs: BTreeSet<String> = tree.entries().keys().cloned().collect();
    derive_key(&tree, &inputs, t, toolchain, env, &BTreeMap::new(), &mut BlobDigestMemo::in_memory()).unwrap().key
}

#[test]
fn keys_change_with_content_mode_toolchain_env_and_recipe_only() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.rs"), "fn main() {}").unwrap();
    symlink("a.rs", dir.path().join("link")).unwrap();
    let t = target(&["tasker-ctl"]);
    let base = key_of(dir.path(), &t, "rustc 1", &[]);
    assert_eq!(base.len(), 64);

    // mtime alone: same key.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    fs::File::options().write(true).open(dir.path().join("a.rs")).unwrap().set_modified(later).unwrap();
    assert_eq!(key_of(dir.path(), &t, "rustc 1", &[]), base);

    assert_ne!(key_of(dir.path(), &t, "rustc 2", &[]), base, "toolchain");
    assert_ne!(key_of(dir.path(), &t, "rustc 1", &[("RUSTFLAGS".into(), Some("-O".into()))]), base, "env");
    let mut other = t.clone();
    other.features = vec!["x".into()];
    assert_ne!(key_of(dir.path(), &other, "rustc 1", &[]), base, "recipe");

    fs::set_permissions(dir.path().join("a.rs"), fs::Permissions::from_mode(0o755)).unwrap();
    let exec = key_of(dir.path(), &t, "rustc 1", &[]);
    assert_ne!(exec, base, "mode");
    fs::remove_file(dir.path().join("link")).unwrap();
    symlink("./a.rs", dir.path().join("link")).unwrap();
    assert_ne!(key_of(dir.path(), &t, "rustc 1", &[]), exec, "symlink target");
}

#[test]
fn resolve_inside_is_lexical_and_bounded() {
    assert_eq!(resolve_inside("crates/shared/proto", "../../proto").as_deref(), Some("proto"));
    assert_eq!(resolve_inside("a/b", "./c/../d").as_deref(), Some("a/d"));
    assert_eq!(resolve_inside("a/b", "../../.."), None);
    assert_eq!(resolve_inside("a/b", "/abs"), None);
}

/// The key of fixed inputs, pinned. Keys are shared between machines and tbuild versions
/// through remote caches: if this fails, the encoding of a key changed, so old entries would
/// be served under new meaning or missed for no reason. Bump `KEY_VERSION` in `src/key.rs`,
/// describe the change in its module doc and in cache-layout.md, then pin the new value.
#[test]
fn the_key_of_fixed_inputs_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("crates/ctl/src")).unwrap();
    fs::write(dir.path().join("crates/ctl/src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(dir.path().join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(dir.path().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("crates/ctl", dir.path().join("ctl")).unwrap();
    let tree = Tree::from_dir(dir.path().to_path_buf()).unwrap();
    let inputs: BTreeSet<String> = tree.entries().keys().cloned().collect();
    let env = [("RUSTFLAGS".to_string(), Some("-O".to_string())), ("CC".to_string(), None)];
    let slices = BTreeMap::from([("Cargo.lock".to_string(), b"[[package]]\nname = \"a\"\n".to_vec())]);
    let key = derive_key(
        &tree,
        &inputs,
        &target(&["tasker-ctl"]),
        "rustc 1.95.0",
        &env,
        &slices,
        &mut BlobDigestMemo::in_memory(),
    )
    .unwrap()
    .key;
    assert_eq!(
        key, "c06cd6c1f63429714f15b8c330a886e021635e23fe0edbb0a844a3e3461a1cfb",
        "the key encoding changed: bump KEY_VERSION and update the key module doc and cache-layout.md"
    );
}

/// The module doc's "Every serialised field" table names every tag `derive_key` writes and
/// every field of a serialised `Target` (its `output` entries' too), so a field added to
/// either without a row fails here.
#[test]
fn the_module_doc_table_names_every_serialised_field() {
    let source = include_str!("key.rs");
    let table: String = source
        .lines()
        .skip_while(|l| !l.starts_with("//! # Every serialised field"))
        .take_while(|l| !l.starts_with("//! # Knowingly not tracked"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(table.contains("| tag |"), "the table is in the module doc");
    let code = &source[source.find("pub fn derive_key").unwrap()..];
    let code = &code[..code.find("\n}\n").unwrap()];
    let tags: Vec<&str> = code.split("hasher.field(\"").skip(1).map(|rest| &rest[..rest.find('"').unwrap()]).collect();
    assert!(tags.len() >= 6, "found the tags {tags:?}");
    for tag in tags {
        assert!(table.contains(&format!("| `{tag}`")), "the key doc's table has no row for the `{tag}` field");
    }
    let mut resolved = target(&["tasker-ctl"]);
    resolved.outputs.push(crate::recipe::Output { path: "a".into(), dest: "b".into() });
    resolved.crate_exclude = Some(vec![]);
    let json = serde_json::to_value(&resolved).unwrap();
    let mut fields: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
    fields.extend(json["output"][0].as_object().unwrap().keys().cloned());
    for field in fields {
        assert!(table.contains(&format!("`{field}`")), "the key doc's `target` row does not name `{field}`");
    }
}

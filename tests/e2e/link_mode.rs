//! The fast paths of a hit: `--link-mode` (hits linked from unpacked trees in the cache) and
//! the no-op repeat (outputs already in place are left alone), and that neither can hand out
//! or keep a modified file.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::support::*;

/// `core --targets BINARIES --json` with the fixture recipe into OUT, plus `extra`.
fn core_with(world: &World, out: &str, extra: &[&str]) -> std::process::Output {
    let recipe = fixture_recipe();
    let mut args = vec!["--recipe", recipe.to_str().unwrap(), "--targets", BINARIES, "--json"];
    args.extend_from_slice(extra);
    world.core_with("main", out, &args)
}

fn sources(manifest: &serde_json::Value) -> Vec<String> {
    let targets = manifest["targets"].as_object().unwrap();
    targets.values().map(|t| t["source"].as_str().unwrap().to_string()).collect()
}

#[test]
fn hardlinked_hits_restore_the_same_bytes_and_an_edited_output_never_reaches_the_store() {
    let world = World::new();
    world.core("main", "out");
    let original = snapshot(&world.out("out"));
    let ctl = "tasker-core-binaries/tasker-ctl";

    let linked = core_with(&world, "linked", &["--link-mode", "hardlink"]);
    assert_ok(&linked);
    let manifest: serde_json::Value = serde_json::from_slice(&linked.stdout).unwrap();
    assert_eq!(statuses(&manifest).values().collect::<Vec<_>>(), ["hit"; 3]);
    assert_eq!(snapshot(&world.out("linked")), original, "hard-linked outputs hold the built bytes");
    let meta = std::fs::metadata(world.out("linked").join(ctl)).unwrap();
    assert!(meta.nlink() >= 2, "tasker-ctl is a link into the cache's tree");
    assert_eq!(meta.permissions().mode() & 0o222, 0, "linked outputs are read-only");
    assert_eq!(run_binary(&world.out("linked").join(ctl)), "tasker-ctl ctl-2 shared-2");

    // A user makes the output writable and edits it in place: the store's file is the same
    // inode, so the next linked hit must notice and re-make the tree from the archive.
    let edited = world.out("linked").join(ctl);
    std::fs::set_permissions(&edited, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&edited, b"#!/bin/sh\necho tampered\n").unwrap();
    let again = core_with(&world, "linked2", &["--link-mode", "hardlink"]);
    assert_ok(&again);
    assert_eq!(snapshot(&world.out("linked2")), original, "an edited tree is re-made, not handed out");
    let copied = core_with(&world, "copied", &[]);
    assert_ok(&copied);
    assert_eq!(snapshot(&world.out("copied")), original, "the archive itself was never touched");

    // Reflink: this filesystem may not clone; then it copies, with a warning, same bytes,
    // and the outputs are ordinary writable files.
    let reflinked = core_with(&world, "reflinked", &["--link-mode", "reflink"]);
    assert_ok(&reflinked);
    assert_eq!(snapshot(&world.out("reflinked")), original);
    let meta = std::fs::metadata(world.out("reflinked").join(ctl)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    assert_eq!(meta.nlink(), 1);
}

#[test]
fn a_repeat_into_an_unchanged_out_dir_restores_nothing_and_an_edit_is_repaired() {
    let world = World::new();
    world.core("main", "out");
    let original = snapshot(&world.out("out"));
    let ctl = world.out("out").join("tasker-core-binaries/tasker-ctl");
    let inode = std::fs::metadata(&ctl).unwrap().ino();

    let repeat = world.core("main", "out");
    assert_eq!(statuses(&repeat).values().collect::<Vec<_>>(), ["hit"; 3]);
    assert_eq!(sources(&repeat), ["in-place"; 3], "{repeat}");
    assert_eq!(std::fs::metadata(&ctl).unwrap().ino(), inode, "the file was left in place");
    assert_eq!(snapshot(&world.out("out")), original);

    // Same size, same mtime, different bytes: still caught (ctime), and restored.
    let mtime = std::fs::metadata(&ctl).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&ctl).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&ctl, &bytes).unwrap();
    std::fs::File::options().write(true).open(&ctl).unwrap().set_modified(mtime).unwrap();
    let repaired = world.core("main", "out");
    assert_eq!(sources(&repaired), ["local"; 3], "{repaired}");
    assert_eq!(snapshot(&world.out("out")), original);

    // Another commit with the same keys is no repeat: its manifest names its own SHA.
    world.core("secure-only", "out");
    let python = world.core("python-only", "out");
    assert_eq!(python["sha"], world.git(&["rev-parse", "python-only^{commit}"]).trim());
    assert_eq!(sources(&python), ["local"; 3]);
}

//! Dev-only: the manifest parser's crate graph against `cargo metadata`'s on every distinct
//! manifest set of a repository's last N commits (`scripts/graph-equivalence.sh` runs it).
//! Exits 1 on any difference, including a tree cargo rejects but the parser graphs.
//!
//! Usage: `graph_equivalence <git dir> [N=300] [rev=HEAD]`

use std::collections::BTreeSet;
use std::process::ExitCode;

use git2::Repository;
use tbuild::cache::BlobDigestMemo;
use tbuild::recipe::Skeleton;
use tbuild::source::Tree;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(git_dir) = args.first() else {
        eprintln!("usage: graph_equivalence <git dir> [N=300] [rev=HEAD]");
        return ExitCode::from(2);
    };
    let n: usize = args.get(1).map_or(300, |s| s.parse().expect("N is a number"));
    let rev = args.get(2).map_or("HEAD", String::as_str);
    let repo = Repository::open(git_dir).expect("a git dir");
    let mut walk = repo.revwalk().expect("revwalk");
    walk.push(repo.revparse_single(rev).expect("rev").peel_to_commit().expect("a commit").id()).expect("push");
    let commits: Vec<git2::Oid> = walk.take(n).map(|oid| oid.expect("walk")).collect();

    let mut memo = BlobDigestMemo::in_memory();
    let mut seen = BTreeSet::new();
    let (mut parsed, mut fallback, mut equal, mut differ) = (0, 0, 0, 0);
    for oid in &commits {
        let tree = Tree::from_commit(Repository::open(git_dir).expect("a git dir"), *oid).expect("tree");
        let Ok(skeleton) = Skeleton::of(&tree) else { continue };
        if !seen.insert(skeleton.digest(&tree, &mut memo).expect("digest")) {
            continue;
        }
        let by_parser = skeleton.parsed(&tree).expect("manifests");
        let by_cargo = skeleton.cargo_metadata(&tree);
        match (by_parser, by_cargo) {
            (None, _) => fallback += 1,
            (Some(p), Ok(c)) if p == c => {
                parsed += 1;
                equal += 1;
            }
            (Some(p), c) => {
                parsed += 1;
                differ += 1;
                println!("DIFFERENT at {oid}:\n  parser: {p:?}\n  cargo:  {c:?}");
            }
        }
    }
    println!(
        "{} commits, {} distinct manifest sets: {parsed} parsed ({equal} equal to cargo metadata, {differ} different), {fallback} left to cargo",
        commits.len(),
        seen.len()
    );
    if differ == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

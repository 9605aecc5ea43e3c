//! `tbuild release download`, and the `--prefer-release` hook of `tbuild core`.

use super::Runtime;
use crate::cli::{CoreArgs, ReleaseDownloadArgs};
use crate::error::Error;
use crate::report::Reporter;
use crate::tools::release::{GitHub, ReleaseError, download_release, github_repo_of};

pub fn download(args: &ReleaseDownloadArgs, runtime: &Runtime, reporter: &Reporter) -> Result<(), Error> {
    let github = GitHub::new(&args.github.api_url, &args.repo)?;
    let downloaded = runtime.get().block_on(async {
        let release = github.release(&args.tag).await?;
        let commit = github.release_commit(&release).await?;
        reporter.info(&format!("release {} of {} is {commit}", release.tag_name, args.repo));
        download_release(&github, &release, &commit, &args.pattern, &args.out).await
    })?;
    report(&downloaded, &args.out, reporter, args.format.is_json());
    Ok(())
}

fn report(downloaded: &crate::tools::release::Downloaded, out: &std::path::Path, reporter: &Reporter, json: bool) {
    let files: usize = downloaded.manifest.targets.values().map(|t| t.files.len()).sum();
    if !downloaded.verified {
        reporter.warn("the release has no checksum file: the assets are not verified");
    }
    let verified = if downloaded.verified { "verified against the release's sha256 sums" } else { "unverified" };
    reporter.info(&format!("{files} asset(s) {verified}; artifacts in {}", out.display()));
    if json {
        println!("{}", serde_json::to_string_pretty(&downloaded.manifest).expect("manifests serialise"));
    }
}

/// `tbuild core --prefer-release TAG`: when the release was built from `--sha`, its assets
/// are the output and `Ok(true)` is returned; otherwise (another commit, no such release, the
/// API unreachable, a checksum mismatch) a message says why and `Ok(false)` lets `core`
/// restore or build as usual.
pub fn prefer_release(args: &CoreArgs, tag: &str, runtime: &Runtime, reporter: &Reporter) -> Result<bool, Error> {
    let repo = match (&args.release.release_repo, github_repo_of(&args.rev.repo.url)) {
        (Some(repo), _) => repo.clone(),
        (None, Some(repo)) => repo,
        (None, None) => {
            return Err(Error::Usage(format!(
                "--prefer-release: --repo {} is not a github.com repository; name the release's with --release-repo OWNER/NAME",
                args.rev.repo.url
            )));
        }
    };
    let Some(rev) = args.rev.sha.as_deref() else {
        reporter.warn(&format!("--prefer-release: a --path checkout cannot match release {tag}; building"));
        return Ok(false);
    };
    let sha = rev.to_ascii_lowercase();
    if !(7..=40).contains(&sha.len()) || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        reporter.warn(&format!(
            "--prefer-release: --sha {rev} is not a commit SHA, so it cannot match release {tag}; building"
        ));
        return Ok(false);
    }
    let github = GitHub::new(&args.release.github.api_url, &repo)?;
    let outcome: Result<bool, ReleaseError> = runtime.get().block_on(async {
        let release = github.release(tag).await?;
        let commit = github.release_commit(&release).await?;
        if !commit.starts_with(&sha) {
            reporter.info(&format!(
                "release {tag} of {repo} was built from {commit}, not {rev}; restoring or building instead"
            ));
            return Ok(false);
        }
        let downloaded = download_release(&github, &release, &commit, &[], &args.out).await?;
        report(&downloaded, &args.out, reporter, args.format.is_json());
        Ok(true)
    });
    match outcome {
        Ok(used) => Ok(used),
        // The output dir is refused whichever way the artifacts come.
        Err(err @ ReleaseError::Publish(_)) => Err(err.into()),
        Err(err) => {
            reporter.warn(&format!("--prefer-release {tag}: {err}; restoring or building instead"));
            Ok(false)
        }
    }
}

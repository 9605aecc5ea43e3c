//! libgit2's process-wide settings, made once before anything else runs.
//!
//! **Object hashes are not re-verified on every read.** libgit2 recomputes the SHA-1 (with
//! collision detection) of each object it reads: 43% of the instructions of keying a commit
//! with a cold digest memo. Every object was verified when it was fetched (indexing a pack
//! hashes each object), and each one is a zlib stream whose adler32 is checked on every
//! inflate, so a damaged object still fails to read; the third check is switched off.
//!
//! **The CA bundle is loaded only when a fetch needs it.**
//! libgit2 built with OpenSSL parses the whole CA bundle when it initialises
//! (`SSL_CTX_set_default_verify_paths`), whatever it is asked to do next: measured with
//! callgrind, 60% of the instructions of a warm `tbuild key` (about 40 ms of wall time here),
//! paid by every run although only a fetch over https verifies a certificate. So tbuild
//! initialises libgit2 with `SSL_CERT_FILE` pointing at an empty file, restores the variable
//! at once (build subprocesses see the caller's environment), and hands libgit2 the real
//! bundle (`GIT_OPT_SET_SSL_CERT_LOCATIONS`) right before the first https fetch.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Once, OnceLock};

/// The bundle to load before an https fetch. Process-wide like libgit2's own TLS context,
/// which it configures; set once by [`init_git`].
static BUNDLE: OnceLock<Option<PathBuf>> = OnceLock::new();

const CERT_FILE: &str = "SSL_CERT_FILE";

/// Initialises libgit2: no SHA-1 re-verification on reads, no CA bundle until needed.
///
/// # Safety
/// Must be called before any other thread exists: it sets an environment variable.
pub unsafe fn init_git() {
    // SAFETY: passed on to the caller's contract.
    unsafe { init_git_deferring_certificates() };
    git2::opts::strict_hash_verification(false);
}

/// Initialises libgit2 without loading the CA bundle.
///
/// # Safety
/// As [`init_git`].
unsafe fn init_git_deferring_certificates() {
    // Where the bundle is: the caller's SSL_CERT_FILE, else what git2 itself would probe.
    let bundle = openssl_probe::probe().cert_file;
    if bundle.is_none() || BUNDLE.set(bundle).is_err() {
        return; // OpenSSL's compiled-in default applies: leave libgit2's init alone.
    }
    let saved: Option<OsString> = std::env::var_os(CERT_FILE);
    // SAFETY: single-threaded per this function's contract.
    unsafe {
        std::env::set_var(CERT_FILE, "/dev/null");
        // Any call that initialises libgit2; this one reads a C global, before threads.
        let _ = git2::opts::get_mwindow_size();
        match saved {
            Some(value) => std::env::set_var(CERT_FILE, value),
            None => std::env::remove_var(CERT_FILE),
        }
    }
}

/// Gives libgit2 the CA bundle, once, before a fetch from `url` over https.
pub fn load_certificates_for(url: &str) {
    static LOADED: Once = Once::new();
    if !url.starts_with("https://") {
        return;
    }
    LOADED.call_once(|| {
        if let Some(Some(bundle)) = BUNDLE.get() {
            // SAFETY: fetches run on one thread, under the mirror lock; libgit2 adds the
            // locations to its TLS context, which no other thread uses meanwhile.
            if let Err(err) = unsafe { git2::opts::set_ssl_cert_file(bundle) } {
                tracing::warn!("cannot load CA certificates from {}: {err}", bundle.display());
            }
        }
    });
}

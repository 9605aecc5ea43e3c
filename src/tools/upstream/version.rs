//! Versions as each ecosystem reads them: cargo and npm follow SemVer 2.0 (the `semver`
//! crate), PyPI follows PEP 440 (`pep440_rs`), RubyGems follows `Gem::Version` (by hand,
//! below). Versions of one ecosystem are only ever compared with each other.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// The four kinds of package `upstream-versions.json` pins, by its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Rust,
    Ruby,
    Python,
    Typescript,
}

impl Ecosystem {
    pub const ALL: [Ecosystem; 4] = [Ecosystem::Rust, Ecosystem::Ruby, Ecosystem::Python, Ecosystem::Typescript];

    /// Its key in `upstream-versions.json`.
    pub fn key(self) -> &'static str {
        match self {
            Ecosystem::Rust => "rust",
            Ecosystem::Ruby => "ruby",
            Ecosystem::Python => "python",
            Ecosystem::Typescript => "typescript",
        }
    }

    pub fn from_key(key: &str) -> Option<Ecosystem> {
        Ecosystem::ALL.into_iter().find(|e| e.key() == key)
    }

    /// The registry its packages are published to.
    pub fn registry(self) -> Registry {
        match self {
            Ecosystem::Rust => Registry::Crates,
            Ecosystem::Ruby => Registry::Rubygems,
            Ecosystem::Python => Registry::Pypi,
            Ecosystem::Typescript => Registry::Npm,
        }
    }

    /// Parses `text` with this ecosystem's grammar.
    pub fn parse(self, text: &str) -> Result<Version, String> {
        let text = text.trim();
        let parsed = match self {
            Ecosystem::Rust | Ecosystem::Typescript => Parsed::Semver(
                semver::Version::parse(text).map_err(|e| format!("'{text}' is not a SemVer version: {e}"))?,
            ),
            Ecosystem::Python => Parsed::Pep440(
                text.parse::<pep440_rs::Version>().map_err(|e| format!("'{text}' is not a PEP 440 version: {e}"))?,
            ),
            Ecosystem::Ruby => Parsed::Gem(GemVersion::parse(text)?),
        };
        Ok(Version { text: text.to_string(), parsed })
    }
}

/// Where an ecosystem's packages are looked up; the names are those of `--registry-url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    Crates,
    Pypi,
    Rubygems,
    Npm,
}

impl Registry {
    pub const ALL: [Registry; 4] = [Registry::Crates, Registry::Pypi, Registry::Rubygems, Registry::Npm];

    pub fn name(self) -> &'static str {
        match self {
            Registry::Crates => "crates",
            Registry::Pypi => "pypi",
            Registry::Rubygems => "rubygems",
            Registry::Npm => "npm",
        }
    }

    pub fn from_name(name: &str) -> Option<Registry> {
        Registry::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The public registry's base URL.
    pub fn default_url(self) -> &'static str {
        match self {
            Registry::Crates => "https://index.crates.io",
            Registry::Pypi => "https://pypi.org",
            Registry::Rubygems => "https://rubygems.org",
            Registry::Npm => "https://registry.npmjs.org",
        }
    }
}

/// A parsed version with its ecosystem's ordering.
#[derive(Debug, Clone)]
pub struct Version {
    pub text: String,
    parsed: Parsed,
}

#[derive(Debug, Clone)]
enum Parsed {
    Semver(semver::Version),
    Pep440(pep440_rs::Version),
    Gem(GemVersion),
}

impl Version {
    /// A pre-release by its ecosystem's rules: a SemVer pre-release tag, a PEP 440 `a`/`b`/`rc`
    /// or `.dev` release (post-releases are final), a gem version with a letter in it.
    pub fn is_prerelease(&self) -> bool {
        match &self.parsed {
            Parsed::Semver(v) => !v.pre.is_empty(),
            Parsed::Pep440(v) => v.any_prerelease(),
            Parsed::Gem(v) => v.prerelease,
        }
    }

    /// major, minor, patch: the first three release numbers (missing ones are 0).
    pub fn triple(&self) -> [u64; 3] {
        match &self.parsed {
            Parsed::Semver(v) => [v.major, v.minor, v.patch],
            Parsed::Pep440(v) => first_three(v.release()),
            Parsed::Gem(v) => first_three(&v.release),
        }
    }
}

fn first_three(release: &[u64]) -> [u64; 3] {
    let at = |i: usize| release.get(i).copied().unwrap_or(0);
    [at(0), at(1), at(2)]
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.parsed, &other.parsed) {
            // SemVer precedence ignores build metadata; `semver`'s Ord does not.
            (Parsed::Semver(a), Parsed::Semver(b)) => {
                (a.major, a.minor, a.patch, &a.pre).cmp(&(b.major, b.minor, b.patch, &b.pre))
            }
            (Parsed::Pep440(a), Parsed::Pep440(b)) => a.cmp(b),
            (Parsed::Gem(a), Parsed::Gem(b)) => a.cmp(b),
            // Never compared: one ecosystem per package.
            _ => self.text.cmp(&other.text),
        }
    }
}

/// `Gem::Version`: dot-separated segments, each all digits or all letters ("1.0.0.rc1" is
/// 1, 0, 0, "rc", 1); any letter makes it a pre-release, and letters sort before numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GemVersion {
    segments: Vec<GemSegment>,
    release: Vec<u64>,
    prerelease: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum GemSegment {
    // Declared first: a letter segment sorts before any number.
    Letters(String),
    Number(u64),
}

impl GemVersion {
    pub fn parse(text: &str) -> Result<GemVersion, String> {
        let valid = !text.is_empty()
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && text.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!("'{text}' is not a RubyGems version"));
        }
        // Gem::Version treats "-" as ".pre." and splits digit runs from letter runs.
        let text = text.replace('-', ".pre.");
        let mut segments = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            while !rest.is_empty() {
                let digits = rest.starts_with(|c: char| c.is_ascii_digit());
                let end = rest.find(|c: char| c.is_ascii_digit() != digits).unwrap_or(rest.len());
                let (run, tail) = rest.split_at(end);
                segments.push(if digits {
                    GemSegment::Number(run.parse().map_err(|_| format!("'{text}': number too large"))?)
                } else {
                    GemSegment::Letters(run.to_string())
                });
                rest = tail;
            }
        }
        let release = segments
            .iter()
            .map_while(|s| match s {
                GemSegment::Number(n) => Some(*n),
                GemSegment::Letters(_) => None,
            })
            .collect::<Vec<_>>();
        let prerelease = release.len() < segments.len();
        Ok(GemVersion { segments: canonical(segments), release, prerelease })
    }
}

/// Gem::Version#canonical_segments: trailing zeros dropped from the release part and from the
/// pre-release part, so "1.0" == "1" and "1.0.a.0" == "1.a".
fn canonical(segments: Vec<GemSegment>) -> Vec<GemSegment> {
    let split = segments.iter().position(|s| matches!(s, GemSegment::Letters(_))).unwrap_or(segments.len());
    let (mut release, mut pre) = (segments[..split].to_vec(), segments[split..].to_vec());
    for part in [&mut release, &mut pre] {
        while part.last() == Some(&GemSegment::Number(0)) {
            part.pop();
        }
    }
    release.extend(pre);
    release
}

impl PartialOrd for GemVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.segments.len().max(other.segments.len());
        let zero = GemSegment::Number(0);
        for i in 0..len {
            let (a, b) = (self.segments.get(i).unwrap_or(&zero), other.segments.get(i).unwrap_or(&zero));
            match a.cmp(b) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(e: Ecosystem, s: &str) -> Version {
        e.parse(s).unwrap()
    }

    #[test]
    fn each_ecosystem_orders_its_own_way() {
        let py = |s| v(Ecosystem::Python, s);
        assert!(py("1.7.6b1") < py("1.7.6"));
        assert!(py("1.7.6") < py("1.7.6.post1"));
        assert!(py("1.0.dev1") < py("1.0a1"));
        assert!(py("1.10") > py("1.9.9"));
        assert_eq!(py("1.0"), py("1.0.0"));
        assert!(py("1.7.8b1").is_prerelease() && py("1.0.dev3").is_prerelease());
        assert!(!py("1.7.6.post1").is_prerelease());

        let gem = |s| v(Ecosystem::Ruby, s);
        assert!(gem("0.2.0.rc1") < gem("0.2.0"));
        assert!(gem("0.2.0.rc1") > gem("0.1.8"));
        assert!(gem("1.0.a") < gem("1.0.b") && gem("1.0.b") < gem("1.0"));
        assert_eq!(gem("1.0"), gem("1"));
        assert!(gem("0.1.10") > gem("0.1.9"));
        assert!(gem("0.2.0.rc1").is_prerelease() && gem("1.0.0-beta").is_prerelease());
        assert_eq!(gem("0.1.10.beta.2").triple(), [0, 1, 10]);
        assert!(Ecosystem::Ruby.parse("v1.0").is_err());

        let sem = |s| v(Ecosystem::Rust, s);
        assert!(sem("0.10.0-rc.9") < sem("0.10.0") && sem("0.10.0-rc.9") > sem("0.9.2"));
        assert_eq!(sem("1.0.0+build.1"), sem("1.0.0"));
        assert!(Ecosystem::Typescript.parse("1.0").is_err(), "npm versions are full SemVer");
    }
}

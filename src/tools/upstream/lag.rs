//! How far a pin is behind the latest stable release, and how much that matters: the design
//! doc's table, with the pre-1.0 rule cargo uses for compatibility.
//!
//! | lag (latest vs pin)                      | update | severity |
//! |------------------------------------------|--------|----------|
//! | none, or 1 patch                         | patch  | info     |
//! | 2+ patches                               | patch  | notice   |
//! | 1 minor                                  | minor  | warning  |
//! | 2+ minors                                | minor  | error    |
//! | 1+ majors                                | major  | critical |
//! | pre-1.0: any minor (0.5.x -> 0.6.0)      | major  | critical |
//! | pre-1.0: any patch of 0.0.x (0.0.3 -> 0.0.4) | major | critical |
//!
//! Before 1.0 the first non-zero number is the breaking one (cargo's `^0.5` admits 0.5.9 but
//! not 0.6.0; npm's `^` and RubyGems' `~> 0.5.0` agree), so such a bump is reported as a
//! major: it needs the same migration. Patches of 0.x.y are patches. Lag is counted as the
//! difference of the version numbers (0.1.3 -> 0.1.8 is 5 patches), whether or not every
//! number between was published. A pin ahead of the latest stable (a pre-release pin) is
//! not behind.
//!
//! The pinned version itself raises the severity: yanked or not published at all -> at
//! least error (a fresh resolve cannot get it); deprecated on npm -> at least warning.

use serde::Serialize;

/// Ordered: `--fail-on warning` fails on warning, error and critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Notice,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// The design doc's action for it.
    pub fn action(self) -> &'static str {
        match self {
            Severity::Info => "No action",
            Severity::Notice => "Consider updating",
            Severity::Warning => "Update within 2 weeks",
            Severity::Error => "Urgent update needed",
            Severity::Critical => "Migration required",
        }
    }
}

/// The kind of update that closes the lag: the suggested priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    None,
    Patch,
    Minor,
    Major,
}

impl Update {
    pub fn name(self) -> &'static str {
        match self {
            Update::None => "none",
            Update::Patch => "patch",
            Update::Minor => "minor",
            Update::Major => "major",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lag {
    pub update: Update,
    /// How many versions of that component behind (5 for 0.1.3 -> 0.1.8).
    pub behind: u64,
    pub severity: Severity,
}

/// Classifies the lag of `pinned` behind `latest` (major, minor, patch of each).
pub fn classify(pinned: [u64; 3], latest: [u64; 3]) -> Lag {
    let [pm, pn, pp] = pinned;
    let [lm, ln, lp] = latest;
    let lag = |update, behind, severity| Lag { update, behind, severity };
    if latest <= pinned {
        return lag(Update::None, 0, Severity::Info);
    }
    if lm > pm {
        return lag(Update::Major, lm - pm, Severity::Critical);
    }
    if ln > pn {
        return if pm == 0 {
            lag(Update::Major, ln - pn, Severity::Critical)
        } else if ln - pn == 1 {
            lag(Update::Minor, 1, Severity::Warning)
        } else {
            lag(Update::Minor, ln - pn, Severity::Error)
        };
    }
    let patches = lp - pp;
    if pm == 0 && pn == 0 {
        lag(Update::Major, patches, Severity::Critical)
    } else if patches <= 1 {
        lag(Update::Patch, patches, Severity::Info)
    } else {
        lag(Update::Patch, patches, Severity::Notice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pinned: [u64; 3], latest: [u64; 3]) -> (Update, u64, Severity) {
        let lag = classify(pinned, latest);
        (lag.update, lag.behind, lag.severity)
    }

    #[test]
    fn every_row_of_the_lag_table() {
        use Severity::*;
        // 0-1 patch: info.
        assert_eq!(check([1, 4, 2], [1, 4, 2]), (Update::None, 0, Info));
        assert_eq!(check([1, 4, 2], [1, 4, 3]), (Update::Patch, 1, Info));
        // 2+ patches: notice.
        assert_eq!(check([1, 4, 2], [1, 4, 4]), (Update::Patch, 2, Notice));
        assert_eq!(check([1, 4, 2], [1, 4, 12]), (Update::Patch, 10, Notice));
        // 1 minor: warning, whatever the patches.
        assert_eq!(check([1, 4, 2], [1, 5, 0]), (Update::Minor, 1, Warning));
        assert_eq!(check([1, 4, 9], [1, 5, 3]), (Update::Minor, 1, Warning));
        // 2+ minors: error.
        assert_eq!(check([1, 4, 2], [1, 6, 0]), (Update::Minor, 2, Error));
        // 1+ majors: critical.
        assert_eq!(check([1, 4, 2], [2, 0, 0]), (Update::Major, 1, Critical));
        assert_eq!(check([1, 9, 9], [3, 0, 1]), (Update::Major, 2, Critical));
    }

    #[test]
    fn before_1_0_the_first_non_zero_number_is_the_breaking_one() {
        use Severity::*;
        // 0.x.y patches are patches: info, then notice (tasker-core today: 0.1.3 -> 0.1.8).
        assert_eq!(check([0, 5, 0], [0, 5, 1]), (Update::Patch, 1, Info));
        assert_eq!(check([0, 1, 3], [0, 1, 8]), (Update::Patch, 5, Notice));
        // A 0.x minor is breaking: critical, even by one.
        assert_eq!(check([0, 5, 0], [0, 6, 0]), (Update::Major, 1, Critical));
        assert_eq!(check([0, 5, 3], [0, 7, 0]), (Update::Major, 2, Critical));
        // 0.0.x: every patch is breaking.
        assert_eq!(check([0, 0, 3], [0, 0, 4]), (Update::Major, 1, Critical));
        assert_eq!(check([0, 0, 3], [0, 1, 0]), (Update::Major, 1, Critical));
        // Reaching 1.0 is a major.
        assert_eq!(check([0, 9, 0], [1, 0, 0]), (Update::Major, 1, Critical));
    }

    #[test]
    fn a_pin_ahead_of_the_latest_stable_is_not_behind() {
        assert_eq!(check([0, 2, 0], [0, 1, 8]), (Update::None, 0, Severity::Info));
        assert_eq!(check([2, 0, 0], [1, 9, 9]), (Update::None, 0, Severity::Info));
    }

    #[test]
    fn severities_are_ordered_for_fail_on() {
        assert!(Severity::Info < Severity::Notice && Severity::Notice < Severity::Warning);
        assert!(Severity::Warning < Severity::Error && Severity::Error < Severity::Critical);
    }
}

//! Sizes (`5GiB`, `500MB`, `0`) and ages (`30d`, `12h`) as the maintenance commands take them,
//! and sizes as messages print them (`1.2 MiB`).
//! Two small parsers rather than two crates: the grammar is a number and a unit.

use std::time::Duration;

/// Bytes from `<number><unit>`: `B`, `K`/`KB` (1000), `KiB` (1024), up to `T`/`TB`/`TiB`.
/// Units are case-insensitive, a space may separate them, the number may have a fraction.
/// The unit is required (`0` aside): `--max-size 5` meaning 5 bytes evicts everything.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text)?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" if number == 0.0 => 1,
        "" => {
            return Err(format!(
                "size {text:?} needs a unit: {text}GiB, {text}MiB, or {text}B if you mean bytes \
                 (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ));
        }
        "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!("unknown size unit {unit:?} in {text:?}; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"));
        }
    };
    Ok((number * multiplier as f64).round() as u64)
}

/// A duration from `<number><unit>`: `s`, `m` (minutes), `h`, `d`, `w`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text)?;
    let seconds: f64 = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        "" => return Err(format!("age {text:?} needs a unit: s, m, h, d or w (e.g. 30d)")),
        _ => return Err(format!("unknown age unit {unit:?} in {text:?}; use s, m, h, d or w (e.g. 30d)")),
    };
    Ok(Duration::from_secs_f64(number * seconds))
}

fn split_number(text: &str) -> Result<(f64, &str), String> {
    let text = text.trim();
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} does not start with a number"))?;
    if !number.is_finite() || number > 1e15 {
        return Err(format!("{text:?} is too large"));
    }
    Ok((number, unit.trim()))
}

/// `1.2 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, bytes) in [
            ("0", 0),
            ("123B", 123),
            ("5GiB", 5 << 30),
            ("500MB", 500_000_000),
            ("500 mb", 500_000_000),
            ("1.5KiB", 1536),
            ("2k", 2000),
            ("1TiB", 1 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in ["", "GiB", "5 parsecs", "-1GB", "1e3", "5"] {
            assert!(parse_size(bad).is_err(), "{bad} must be refused");
        }
        let err = parse_size("5").unwrap_err();
        assert!(err.contains("needs a unit") && err.contains("5GiB") && err.contains("5B"), "{err}");
    }

    #[test]
    fn ages() {
        for (text, secs) in [("30d", 30 * 86_400), ("12h", 43_200), ("90s", 90), ("5m", 300), ("2w", 1_209_600)] {
            assert_eq!(parse_age(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        assert!(parse_age("30").unwrap_err().contains("needs a unit"));
        assert!(parse_age("3y").is_err());
        assert!(parse_age("d").is_err());
    }
}

//! Durations as written in specs: `90s`, `15m`, `1h30m`.

use alloc::format;
use alloc::string::String;

/// The longest timeout a step may have: a week. Longer is almost surely a typo
/// (`900h` for `900s`), and a Job that long would hold the database's
/// migration lock for days.
pub const MAX_SECONDS: u64 = 7 * 24 * 3600;

/// Seconds in `text` (`[<n>h][<n>m][<n>s]`, at least one part, in that
/// order), between 1 second and [`MAX_SECONDS`].
pub fn parse(text: &str) -> Result<u64, String> {
    const UNITS: [(u8, u64); 3] = [(b'h', 3600), (b'm', 60), (b's', 1)];
    let bytes = text.as_bytes();
    let mut index = 0;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while index < bytes.len() {
        let start = index;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
        }
        if index == start || index == bytes.len() {
            return Err(format_error(text));
        }
        let unit = bytes[index];
        let Some(position) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(format_error(text));
        };
        let (_, scale) = UNITS[next_unit + position];
        next_unit += position + 1;
        let number: u64 = text[start..index].parse().map_err(|_| format_error(text))?;
        total = number
            .checked_mul(scale)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| too_long(text))?;
        index += 1;
    }
    if text.is_empty() {
        return Err(format_error(text));
    }
    if total == 0 {
        return Err(format!("{text:?} is zero; a step needs at least 1s"));
    }
    if total > MAX_SECONDS {
        return Err(too_long(text));
    }
    Ok(total)
}

fn format_error(text: &str) -> String {
    format!(
        "{text:?} is not a duration; write hours, minutes and seconds in that order, e.g. 90s, 15m or 1h30m"
    )
}

fn too_long(text: &str) -> String {
    format!("{text:?} is longer than the maximum of 168h (a week)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_combination_of_units() {
        assert_eq!(parse("90s"), Ok(90));
        assert_eq!(parse("15m"), Ok(900));
        assert_eq!(parse("1h30m"), Ok(5400));
        assert_eq!(parse("1h0m5s"), Ok(3605));
        assert_eq!(parse("2h"), Ok(7200));
        assert_eq!(parse("168h"), Ok(MAX_SECONDS));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [
            "", "15", "m", "15x", "1m1h", "1h1h", "-5s", "1.5h", " 5s", "5s ", "5S", "٣s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn refuses_zero_and_absurd_lengths() {
        assert!(parse("0s").unwrap_err().contains("zero"));
        assert!(parse("0h0m0s").is_err());
        assert!(parse("169h").unwrap_err().contains("maximum"));
        assert!(parse("99999999999999999999s").is_err());
        assert!(parse("18446744073709551615h").is_err());
    }
}

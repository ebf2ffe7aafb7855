//! Sizes and dates for people: `3.00 MiB`, `64K` on the command line, UTC timestamps.

/// `bytes` with a binary unit: `512 B`, `1.50 KiB`, `3.00 MiB`, … up to EiB.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// Parses a byte count: digits, optionally followed by a binary unit `K`/`KiB`, `M`/`MiB`
/// or `G`/`GiB` (any case; `KB`/`MB`/`GB` also mean 1024-based units).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "{text:?} is not a size (expected e.g. 65536, 64K, 1MiB)"
        ));
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown size unit {other:?} (use K, M or G)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a transfer rate in bytes per second: a number (decimals allowed), optionally
/// followed by a unit and optionally by `/s`: `4MiB/s`, `500KiB/s`, `1.5M`, `1MB/s`,
/// `65536`. Binary units `K`/`KiB`, `M`/`MiB`, `G`/`GiB` are powers of 1024; decimal
/// units `kB`/`KB`, `MB`, `GB` powers of 1000 (as network speeds are usually given); `B`
/// or nothing is bytes. Any case for the letters but the `i`-less `B` forms. 0 means
/// unlimited.
pub(crate) fn parse_rate(text: &str) -> Result<u64, String> {
    let example = "expected e.g. 4MiB/s, 500KiB/s, 1MB/s or 65536 (bytes per second)";
    let trimmed = text.trim();
    let body = trimmed
        .strip_suffix("/s")
        .or_else(|| trimmed.strip_suffix("/S"))
        .unwrap_or(trimmed)
        .trim();
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(number_end);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(format!("{text:?} is not a rate ({example})"));
    }
    let multiplier: u64 = match unit.trim() {
        "" | "b" | "B" => 1,
        u if u.eq_ignore_ascii_case("k") || u.eq_ignore_ascii_case("kib") => 1 << 10,
        u if u.eq_ignore_ascii_case("m") || u.eq_ignore_ascii_case("mib") => 1 << 20,
        u if u.eq_ignore_ascii_case("g") || u.eq_ignore_ascii_case("gib") => 1 << 30,
        u if u.eq_ignore_ascii_case("kb") => 1_000,
        u if u.eq_ignore_ascii_case("mb") => 1_000_000,
        u if u.eq_ignore_ascii_case("gb") => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown rate unit {other:?} in {text:?} (use KiB, MiB, GiB, kB, MB or GB, \
                 optionally with /s)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a rate ({example})"))?;
    let bytes = (value * multiplier as f64).round();
    // 2^62 bytes per second is far beyond any link; past it the float is not exact.
    if !bytes.is_finite() || bytes >= (1u64 << 62) as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as u64)
}

/// Parses a size that must not be zero; `what` names it in the error ("the payload").
pub(crate) fn parse_nonzero_size(text: &str, what: &str) -> Result<u64, String> {
    let n = parse_size(text)?;
    if n == 0 {
        return Err(format!("{what} must not be empty"));
    }
    Ok(n)
}

/// Parses a piece length: a power of two of at least 16 KiB (one block).
pub(crate) fn parse_piece_length(text: &str) -> Result<u32, String> {
    let n = parse_size(text)?;
    u32::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two() && *n >= 16 * 1024)
        .ok_or_else(|| format!("{text}: a piece length must be a power of two of at least 16K"))
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn unix_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A moment as RFC 3339 UTC with milliseconds, `2026-12-05T15:03:00.123Z`: the `time` of
/// every `--json` line. A clock before 1970 (a broken machine) reads as the epoch rather
/// than failing the run.
pub(crate) fn rfc3339_millis(at: std::time::SystemTime) -> String {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX / 2);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard
/// Hinnant's `civil_from_days`: shift to eras of 400 years starting on March 1st.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `n` and a noun, plural unless `n` is 1: `1 peer`, `3 peers`.
pub(crate) fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.00 KiB");
        assert_eq!(size(1536), "1.50 KiB");
        assert_eq!(size(3 * 1024 * 1024 + 7), "3.00 MiB");
        assert_eq!(size(u64::MAX), "16.00 EiB");
    }

    #[test]
    fn parsing_sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64kib"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2 G"), Ok(2 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("12T").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("17179869184G").is_err());
    }

    #[test]
    fn parsing_rates() {
        assert_eq!(parse_rate("4MiB/s"), Ok(4 << 20));
        assert_eq!(parse_rate("500KiB/s"), Ok(500 << 10));
        assert_eq!(parse_rate("1MB/s"), Ok(1_000_000));
        assert_eq!(parse_rate("1mb/s"), Ok(1_000_000));
        assert_eq!(parse_rate("65536"), Ok(65536));
        assert_eq!(parse_rate("100/s"), Ok(100));
        assert_eq!(parse_rate("1.5M"), Ok(3 << 19));
        assert_eq!(parse_rate("2 GiB/s"), Ok(2 << 30));
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("10kB/s"), Ok(10_000));
        for bad in [
            "", "/s", "fast", "-1", "4TiB/s", "1.", ".5M", "1.2.3K", "4MiB/h", "9e99",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_rate("99999999999999999999G").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(unix_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(unix_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
        // A leap day, and a time before the epoch.
        assert_eq!(unix_time(951_825_600), "2000-02-29 12:00:00 UTC");
        assert_eq!(unix_time(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn rfc3339_timestamps() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |ms: u64| rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(at(951_825_600_999), "2000-02-29T12:00:00.999Z");
        // Milliseconds are truncated, never rounded up into the next second.
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(1_999_999_999)),
            "1970-01-01T00:00:01.999Z"
        );
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn counts_take_a_plural_unless_one() {
        assert_eq!(count(1, "peer"), "1 peer");
        assert_eq!(count(0, "peer"), "0 peers");
        assert_eq!(count(12, "peer"), "12 peers");
    }
}

//! CloudTrail `eventTime` parsing.
//!
//! Real files carry more than RFC 3339: sanitisers and log pipelines rewrite
//! `2023-07-10T11:54:42Z` as `2023-07-10 11:54:42` or append nanoseconds.
//! Every accepted form is read as UTC unless it names an offset.

use chrono::{DateTime, SecondsFormat, Utc};

/// Seconds since the Unix epoch, UTC. Detectors work in whole seconds
/// because every configured duration is whole seconds.
pub type EpochSeconds = i64;

/// Parses `YYYY-MM-DD[T| ]HH:MM:SS[.fraction][Z|±HH:MM|±HHMM]`.
pub fn parse_event_time(text: &str) -> Option<EpochSeconds> {
    let b = text.trim().as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |acc, d| d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0')))
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second; CloudTrail never writes one, but it is valid RFC 3339.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if let Some((&b'.', fraction)) = rest.split_first() {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (two_digits(*h1, *h2)?, two_digits(*m1, *m2)?),
                [h1, h2] => (two_digits(*h1, *h2)?, 0),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let seconds = h * 3600 + m * 60;
            if *sign == b'+' {
                seconds
            } else {
                -seconds
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds)
}

fn two_digits(a: u8, b: u8) -> Option<i64> {
    (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 in UTC with a `Z`, as alerts print it.
pub fn format_rfc3339(seconds: EpochSeconds) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form_seen_in_real_files() {
        let expected = 1_688_990_082; // 2023-07-10T11:54:42Z
        for text in [
            "2023-07-10T11:54:42Z",
            "2023-07-10 11:54:42",
            "2023-07-10 11:54:42.000000000",
            "2023-07-10T11:54:42.123Z",
            "2023-07-10T13:54:42+02:00",
            "2023-07-10T06:54:42-0500",
        ] {
            assert_eq!(parse_event_time(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for text in [
            "",
            "yesterday",
            "2023-13-10T11:54:42Z",
            "2023-02-30T00:00:00Z",
            "2023-07-10T25:00:00Z",
            "2023-07-10T11:54:42Zjunk",
            "2023-07-10T11:54:42.",
        ] {
            assert_eq!(parse_event_time(text), None, "{text}");
        }
    }

    #[test]
    fn formats_as_rfc3339_utc() {
        assert_eq!(format_rfc3339(1_688_990_082), "2023-07-10T11:54:42Z");
        assert_eq!(
            parse_event_time("2024-02-29T00:00:00Z").map(format_rfc3339).as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
    }
}

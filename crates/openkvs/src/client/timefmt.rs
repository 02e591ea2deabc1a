//! Timestamps as the AWS CLI reads and prints them: input as epoch seconds or ISO 8601 (naive = UTC, botocore
//! `parse_to_aware_datetime`), sent as whole epoch seconds (botocore `_timestamp_unixtimestamp` truncates), printed
//! raw (`cli_timestamp_format = none`, the v1 default) or as Python's `datetime.isoformat()` (`iso8601`).

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime};

/// Python's `isoformat()` up to the seconds.
const ISO_SECONDS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
/// Python logging's `asctime`.
const ASCTIME: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second],[subsecond digits:3]");

fn digits(s: &str, n: usize) -> Option<i64> {
    if s.len() == n && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Parses a user-supplied timestamp to epoch seconds: `1704067200`, `1704067200.5`, `2024-01-01`,
/// `2024-01-01T00:00:00[.ffffff][Z|±HH:MM|±HHMM]` (also with a space instead of `T`). `None` if not understood.
pub(crate) fn parse_timestamp(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(epoch) = text.parse::<f64>() {
        return epoch.is_finite().then_some(epoch);
    }
    let (date, rest) = match text.find(['T', 't', ' ']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let mut parts = date.split('-');
    let year = digits(parts.next()?, 4)?;
    let month = digits(parts.next()?, 2)?;
    let day = digits(parts.next()?, 2)?;
    if parts.next().is_some() {
        return None;
    }
    // A day the month does not have (2023-02-29) is refused, as Python's datetime refuses it.
    let date = Date::from_calendar_date(
        i32::try_from(year).ok()?,
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let mut seconds = date.midnight().assume_utc().unix_timestamp() as f64;
    if rest.is_empty() {
        return Some(seconds);
    }
    // Split off the zone designator.
    let (clock, offset_seconds) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let zone = &rest[i + 1..];
        let sign = if rest.as_bytes()[i] == b'-' { -1 } else { 1 };
        let (h, m) = match zone.split_once(':') {
            Some((h, m)) => (digits(h, 2)?, digits(m, 2)?),
            None if zone.len() == 4 => (digits(&zone[..2], 2)?, digits(&zone[2..], 2)?),
            None => (digits(zone, 2)?, 0),
        };
        (&rest[..i], sign * (h * 3600 + m * 60))
    } else {
        (rest, 0)
    };
    let mut fields = clock.split(':');
    let hour = digits(fields.next()?, 2)?;
    let minute = fields.next().map(|m| digits(m, 2)).unwrap_or(Some(0))?;
    let second: f64 = match fields.next() {
        Some(s) => {
            let whole = s.split('.').next()?;
            digits(whole, 2)?;
            s.parse().ok()?
        }
        None => 0.0,
    };
    if fields.next().is_some() || hour > 24 || minute > 59 || second >= 61.0 {
        return None;
    }
    seconds += (hour * 3600 + minute * 60 - offset_seconds) as f64 + second;
    Some(seconds)
}

/// Python `datetime.fromtimestamp(epoch, tzutc()).isoformat()`: `2024-01-01T00:00:00.123000+00:00`. `None` where
/// Python has no datetime either (beyond year 9999).
pub(crate) fn iso8601(epoch: f64) -> Option<String> {
    let micros_total = (epoch * 1_000_000.0).round() as i64;
    let seconds = micros_total.div_euclid(1_000_000);
    let micros = micros_total.rem_euclid(1_000_000);
    let utc = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    let mut out = utc.format(ISO_SECONDS).ok()?;
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out.push_str("+00:00");
    Some(out)
}

/// Python logging's `asctime` of `time`: `2024-01-01 00:00:00,123` (UTC).
pub(crate) fn asctime(time: OffsetDateTime) -> String {
    time.format(ASCTIME)
        .unwrap_or_else(|_| unreachable!("a UTC date-time has every component ASCTIME names"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms_botocore_accepts() {
        for (text, want) in [
            ("1704067200", 1704067200.0),
            ("1704067200.5", 1704067200.5),
            ("2024-01-01", 1704067200.0),
            ("2024-01-01T00:00:00Z", 1704067200.0),
            ("2024-01-01T01:00:00+01:00", 1704067200.0),
            ("2024-01-01 00:00:01.5", 1704067201.5),
            ("2023-12-31T23:00:00-0100", 1704067200.0),
        ] {
            assert_eq!(parse_timestamp(text), Some(want), "{text}");
        }
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2024-02-29"), Some(1709164800.0));
        for bad in [
            "2023-02-29",
            "2024-04-31",
            "2024-13-01",
            "2024-00-10",
            "2024-01-00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn isoformat_like_python() {
        assert_eq!(
            iso8601(1704067200.0).as_deref(),
            Some("2024-01-01T00:00:00+00:00")
        );
        assert_eq!(
            iso8601(1795576049.109).as_deref(),
            Some("2026-11-25T03:07:29.109000+00:00")
        );
        assert_eq!(
            iso8601(-1.5).as_deref(),
            Some("1969-12-31T23:59:58.500000+00:00")
        );
        assert_eq!(iso8601(1e15), None);
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_704_067_200_123_456_789).unwrap();
        assert_eq!(asctime(t), "2024-01-01 00:00:00,123");
    }
}

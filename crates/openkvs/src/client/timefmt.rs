//! Timestamps as the AWS CLI reads and prints them: input as epoch seconds or ISO 8601 (naive = UTC, botocore
//! `parse_to_aware_datetime`), sent as whole epoch seconds (botocore `_timestamp_unixtimestamp` truncates), printed
//! raw (`cli_timestamp_format = none`, the v1 default) or as Python's `datetime.isoformat()` (`iso8601`).

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

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
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut seconds = (days_from_civil(year, month, day) * 86400) as f64;
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

/// Python `datetime.fromtimestamp(epoch, tzutc()).isoformat()`: `2024-01-01T00:00:00.123000+00:00`.
pub(crate) fn iso8601(epoch: f64) -> String {
    let micros_total = (epoch * 1_000_000.0).round() as i64;
    let seconds = micros_total.div_euclid(1_000_000);
    let micros = micros_total.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86400));
    let of_day = seconds.rem_euclid(86400);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    );
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out.push_str("+00:00");
    out
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
    }

    #[test]
    fn isoformat_like_python() {
        assert_eq!(iso8601(1704067200.0), "2024-01-01T00:00:00+00:00");
        assert_eq!(iso8601(1795576049.109), "2026-11-25T03:07:29.109000+00:00");
    }
}

//! ISO-8601 basic format (`20150830T123600Z`) for `X-Amz-Date`; the calendar is the `time` crate's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

const AMZ_DATE: &[BorrowedFormatItem<'_>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// `SystemTime` → `YYYYMMDDTHHMMSSZ` (UTC, whole seconds). Times before 1970 clamp to the epoch, times after
/// 9999-12-31T23:59:59Z (four year digits) to that instant.
pub fn format_amz_date(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let utc = i64::try_from(seconds)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(PrimitiveDateTime::MAX.assume_utc());
    utc.format(AMZ_DATE)
        .unwrap_or_else(|_| unreachable!("a UTC date-time has every component AMZ_DATE names"))
}

/// `YYYYMMDDTHHMMSSZ` → `SystemTime`; `None` unless exactly that form with a valid date and time at or after
/// the epoch (no leap second).
pub fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u16> {
        let digits = &bytes[range];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')),
        )
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    let date = Date::from_calendar_date(
        i32::from(year),
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let time = Time::from_hms(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
    )
    .ok()?;
    let seconds = PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp();
    UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(seconds).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(t));
        assert_eq!(format_amz_date(UNIX_EPOCH), "19700101T000000Z");
        let leap = parse_amz_date("20240229T235959Z").unwrap();
        assert_eq!(format_amz_date(leap), "20240229T235959Z");
        assert_eq!(
            format_amz_date(leap + Duration::from_secs(1)),
            "20240301T000000Z"
        );
    }

    #[test]
    fn clamps_outside_four_year_digits() {
        assert_eq!(
            format_amz_date(UNIX_EPOCH - Duration::from_secs(1)),
            "19700101T000000Z"
        );
        let last = parse_amz_date("99991231T235959Z").unwrap();
        assert_eq!(format_amz_date(last), "99991231T235959Z");
        assert_eq!(
            format_amz_date(last + Duration::from_secs(86_400 * 400)),
            "99991231T235959Z"
        );
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "",
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20150231T000000Z",
            "20230229T000000Z",
            "20151301T000000Z",
            "20150001T000000Z",
            "20150800T000000Z",
            "2015083aT123600Z",
            "+0150830T123600Z",
            "20150830T243600Z",
            "20150830T236000Z",
            "20150830T235960Z",
            "19691231T235959Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_day_for_a_few_centuries_round_trips() {
        for days in (0..200_000u64).step_by(7) {
            let t = UNIX_EPOCH + Duration::from_secs(days * 86_400 + 3_723);
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
        }
    }
}

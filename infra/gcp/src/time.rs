//! RFC 3339 timestamps as Google's APIs write them (`2026-11-25T17:00:48.468Z`), read into
//! milliseconds without a date crate.

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp (`Z` or a `±hh:mm` offset, any number
/// of fraction digits), or `None` when it is not one.
#[must_use]
pub fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let (clock, offset_minutes) = split_offset(rest)?;
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, fraction)) => (hms, fraction),
        None => (clock, ""),
    };
    let mut hms_parts = hms.splitn(3, ':');
    let hour: i64 = hms_parts.next()?.parse().ok()?;
    let minute: i64 = hms_parts.next()?.parse().ok()?;
    let second: i64 = hms_parts.next()?.parse().ok()?;
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// Splits `hh:mm:ss[.f]Z` or `hh:mm:ss[.f]+hh:mm` into the clock and the offset in minutes.
fn split_offset(rest: &str) -> Option<(&str, i64)> {
    if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    let at = rest.rfind(['+', '-'])?;
    let (clock, offset) = rest.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let (h, m) = offset.get(1..)?.split_once(':')?;
    let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
    Some((clock, sign * minutes))
}

/// Howard Hinnant's `days_from_civil`: a proleptic Gregorian date to days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339_millis as parse;

    #[test]
    fn reads_what_google_writes() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("2026-11-25T00:00:00Z"), Some(1_795_564_800_000));
        assert_eq!(parse("2026-11-25T17:00:48.468Z"), Some(1_795_564_800_000 + 61_248_468));
        assert_eq!(parse("2026-11-25T17:00:48.468123456Z"), Some(1_795_564_800_000 + 61_248_468));
        assert_eq!(parse("2024-02-29T12:00:00Z"), Some(1_709_208_000_000));
        assert_eq!(parse("2026-11-25T01:00:00+01:00"), Some(1_795_564_800_000));
        assert_eq!(parse("1969-12-31T23:59:59.5Z"), Some(-500));
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for text in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-25", "2026-11-25T25:00:00Z"]
        {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}

//! Reading the forges' timestamps (RFC 3339, or GitLab's older `2024-01-02 03:04:05 UTC`).

use cadre_domain::Timestamp;

/// Milliseconds since the Unix epoch of a UTC or offset timestamp; `None` when it is not one.
pub(crate) fn parse(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    let text = text.strip_suffix(" UTC").map_or_else(|| text.to_owned(), |t| format!("{t}Z"));
    let text = text.replacen(' ', "T", 1);
    let (date, rest) = text.split_once('T')?;
    let mut d = date.split('-');
    let (year, month, day): (i64, i64, i64) =
        (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let (clock, offset_secs) = if let Some(c) = rest.strip_suffix('Z') {
        (c, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off.get(1..)?.split_once(':').unwrap_or((off.get(1..3)?, off.get(3..)?));
        (c, sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60))
    };
    let mut t = clock.split(':');
    let (hour, minute): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let seconds: f64 = t.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 - offset_secs;
    // Whole milliseconds of a non-negative seconds field below 61.
    #[allow(clippy::cast_possible_truncation)]
    let millis = (seconds * 1000.0).round() as i64;
    Some(Timestamp(secs * 1000 + millis))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn formats() {
        assert_eq!(parse("1970-01-01T00:00:00Z").unwrap().0, 0);
        assert_eq!(parse("2024-03-01T12:00:00Z").unwrap().0, 1_709_294_400_000);
        assert_eq!(parse("2024-03-01 12:00:00 UTC").unwrap().0, 1_709_294_400_000);
        assert_eq!(parse("2024-03-01T14:00:00+02:00").unwrap().0, 1_709_294_400_000);
        assert_eq!(parse("2024-03-01T12:00:00.250Z").unwrap().0, 1_709_294_400_250);
        assert!(parse("yesterday").is_none());
    }
}

//! Wall-clock text as BIRD and Calico write it, in UTC (calico-node runs without `TZ`).
//!
//! BIRD 1.6 prints a protocol's `since` with `%T` when it is less than 20 hours old and with
//! `%F` otherwise, and `show status` times as `%F %T`; Kubernetes timestamps
//! (`lastUpdated`) are RFC 3339 in UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// (year, month, day, hour, minute, second) of `t` in UTC.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = unix_seconds(t).floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Proleptic Gregorian date from a day number (the era/day-of-era method: eras of
    // 400 years = 146 097 days, years starting in March so the leap day comes last).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month as u32,
        day as u32,
        (rem / 3_600) as u32,
        (rem % 3_600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// `%F %T`: `2026-11-23 17:00:01`.
pub fn datetime(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// RFC 3339, UTC: `2026-11-23T17:00:01Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A protocol's `since` as BIRD prints it at `now`: `%T` within 20 hours, else `%F`.
pub fn bird_since(since: SystemTime, now: SystemTime) -> String {
    let age = now.duration_since(since).unwrap_or(Duration::ZERO);
    let (y, mo, d, h, mi, s) = civil(since);
    if age < Duration::from_secs(20 * 3_600) {
        format!("{h:02}:{mi:02}:{s:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn formats() {
        assert_eq!(datetime(at(0)), "1970-01-01 00:00:00");
        // 2000-02-29 (a leap day of a century year) 12:34:56.
        assert_eq!(datetime(at(951_827_696)), "2000-02-29 12:34:56");
        assert_eq!(rfc3339(at(1_795_453_200)), "2026-11-23T17:00:00Z");
        assert_eq!(rfc3339(at(4_107_542_399)), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(at(4_107_542_400)), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn since_switches_to_the_date_after_20_hours() {
        let since = at(1_795_453_200);
        assert_eq!(bird_since(since, at(1_795_453_200 + 60)), "17:00:00");
        assert_eq!(
            bird_since(since, at(1_795_453_200 + 20 * 3600 - 1)),
            "17:00:00"
        );
        assert_eq!(
            bird_since(since, at(1_795_453_200 + 20 * 3600)),
            "2026-11-23"
        );
        // A clock that went backwards is "now".
        assert_eq!(bird_since(since, at(0)), "17:00:00");
    }
}

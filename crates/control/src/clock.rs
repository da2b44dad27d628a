//! Wall-clock formatting as BIRD prints it, in UTC (calico-node runs with `TZ` unset).
//!
//! BIRD 1.6 prints protocol and route times with `%T` when less than 20 hours ago and `%F`
//! otherwise (`conf/conf.c`, the `tf_proto`/`tf_route` default), and `show status` times as
//! `%F %T`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Civil date and time of a Unix time, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

fn civil(t: SystemTime) -> Civil {
    let secs: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX / 2),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days to civil date (proleptic Gregorian), after H. Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
    }
}

/// `%F %T`: `2026-08-22 09:30:01`.
pub fn datetime(t: SystemTime) -> String {
    let c = civil(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// RFC 3339 in UTC, for JSON: `2026-08-22T09:30:01Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let c = civil(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// BIRD's short time: `%T` within 20 hours of `now`, else `%F`. Always one token, which
/// calico-node's `show protocols` parser relies on.
pub fn short(t: SystemTime, now: SystemTime) -> String {
    let c = civil(t);
    let recent = now
        .duration_since(t)
        .map(|ago| ago < Duration::from_secs(20 * 3600))
        .unwrap_or(true);
    if recent {
        format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second)
    } else {
        format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
    }
}

/// Serialises a `SystemTime` as RFC 3339 (serde `serialize_with`).
pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// Serialises an optional `SystemTime` as RFC 3339 or null.
pub fn serialize_opt<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_dates() {
        assert_eq!(datetime(at(0)), "1970-01-01 00:00:00");
        // 2000-02-29 12:34:56 (a leap day in a century leap year)
        assert_eq!(datetime(at(951_827_696)), "2000-02-29 12:34:56");
        // 2026-08-22 09:30:01
        assert_eq!(datetime(at(1_787_391_001)), "2026-08-22 09:30:01");
        assert_eq!(rfc3339(at(1_787_391_001)), "2026-08-22T09:30:01Z");
        assert_eq!(datetime(at(4_102_444_799)), "2099-12-31 23:59:59");
    }

    #[test]
    fn short_form_switches_after_20_hours() {
        let t = at(1_787_391_001);
        assert_eq!(short(t, t + Duration::from_secs(3600)), "09:30:01");
        assert_eq!(short(t, t + Duration::from_secs(20 * 3600 - 1)), "09:30:01");
        assert_eq!(short(t, t + Duration::from_secs(20 * 3600)), "2026-08-22");
        // A time in the future (clock stepped back) stays short.
        assert_eq!(short(t, t - Duration::from_secs(5)), "09:30:01");
    }
}

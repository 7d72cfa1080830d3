//! When to try a failed batch again: exponential backoff with jitter,
//! honouring the server's Retry-After, within a total time budget (the OTLP
//! exporter spec's retry rules).

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            multiplier: 2,
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (1 = the first retry): full jitter
    /// between half and all of the exponential step, so that many clients
    /// that failed together do not retry together. `random` is any u64.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let factor = (self.multiplier as u64).saturating_pow(attempt.saturating_sub(1));
        let step = self
            .initial
            .saturating_mul(factor.min(u32::MAX as u64) as u32)
            .min(self.max);
        let half = step / 2;
        let jitter_ns = if half.as_nanos() == 0 {
            0
        } else {
            random % half.as_nanos() as u64
        };
        half + Duration::from_nanos(jitter_ns)
    }
}

/// Retry-After as seconds or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37
/// GMT`); a date in the past means "now".
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    let now = crate::span::clock::now_unix_ns() / 1_000_000_000;
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate.
fn parse_http_date(s: &str) -> Option<u64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let (_, rest) = s.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    // IMF-fixdate's year is 4DIGIT: a longer one would overflow the day
    // arithmetic below (found by fuzzing: the year 199555555555555554).
    let year_text = parts.next()?;
    if year_text.len() != 4 {
        return None;
    }
    let year: i64 = year_text.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    if days < 0 {
        return Some(0);
    }
    Some(days as u64 * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 199555555555555554 08:49:37 GMT"),
            None
        );
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253_402_300_799)
        );
        assert_eq!(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff::default();
        let d1 = b.delay(1, 0);
        assert_eq!(d1, Duration::from_millis(50));
        assert!(b.delay(1, u64::MAX) < Duration::from_millis(100));
        assert!(b.delay(3, 0) == Duration::from_millis(200));
        assert!(b.delay(40, 12345) <= Duration::from_secs(5));
    }
}

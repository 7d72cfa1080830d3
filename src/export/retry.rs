//! When to try a failed request again: exponential backoff with jitter,
//! honouring the server's Retry-After, within a total time budget (the OTLP
//! exporter spec's retry rules). Everything here is pure arithmetic on
//! values that may come from a hostile server, so all of it saturates.

use std::time::Duration;

/// How long the backend counts as down after a request gave up, when the
/// server asked for nothing or for more than the budget: then one request
/// is tried again (a probe).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The most a probe of a backend that gave no answer is given, when a
/// flush or shutdown waits for it (`Delivery::silence_at_flush`): a backend
/// that is up answers an export in well under a second; one that accepts
/// and never answers cost a second whole request timeout (10 s by default)
/// for every probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The waits before the quick retries of a request no server took
/// (refused, unresolved, closed unanswered) while a flush or shutdown waits
/// for it: 0.75 s in all, over which a restarting collector or one dropped
/// connection is seen to be a blip, where the backoff of `RetryPolicy`
/// went on until the caller's deadline (25 s of a 30 s shutdown).
pub const QUICK_RETRIES: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

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
            random % half.as_nanos().min(u64::MAX as u128) as u64
        };
        half + Duration::from_nanos(jitter_ns)
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryStep {
    /// Wait this long, then send again.
    Wait(Duration),
    /// Stop trying this request now (keep it in the spool) and take the
    /// backend to be down for this long; then probe it with one request.
    GiveUp { down_for: Duration },
}

/// The retry rules of one request: backoff, and the budget that all its
/// attempts and waits share (`export_timeout_ms`).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    pub budget: Duration,
}

impl RetryPolicy {
    pub fn new(budget: Duration) -> RetryPolicy {
        RetryPolicy {
            backoff: Backoff::default(),
            budget,
        }
    }

    /// The step after failed attempt number `attempt` (1 = the first send),
    /// `elapsed` after the first one started. A server's Retry-After is
    /// honoured while it fits in what is left of the budget; one beyond the
    /// budget is never a reason to stop sending for longer: the request is
    /// kept and the backend probed again in about a second. Retry-After is
    /// a floor, never a shortcut past the backoff: a server answering
    /// `Retry-After: 0` (or a date in the past) to every request would
    /// otherwise get them back to back, tens of thousands a second, until
    /// the budget ran out (as the Go SDK does, the longer of the two).
    pub fn after_failure(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        elapsed: Duration,
        random: u64,
    ) -> RetryStep {
        let backoff = self.backoff.delay(attempt, random);
        let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
        let fits = elapsed
            .checked_add(wait)
            .is_some_and(|end| end <= self.budget);
        if fits {
            return RetryStep::Wait(wait);
        }
        let down_for = match retry_after {
            // The server's wish, when it is one we can honour.
            Some(asked) if asked <= self.budget => asked.max(PROBE_INTERVAL),
            _ => PROBE_INTERVAL,
        };
        RetryStep::GiveUp { down_for }
    }
}

/// Retry-After as seconds or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37
/// GMT`), as a wait from `now_unix_s`; a date in the past means "now".
/// None for anything else (the caller then backs off as usual).
pub fn parse_retry_after(value: &str, now_unix_s: u64) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a very long time".
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = parse_http_date(value)?;
    Some(Duration::from_secs(at.saturating_sub(now_unix_s)))
}

/// Seconds since the epoch of an IMF-fixdate; 0 for a date before 1970.
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
    if parts.next()? != "GMT"
        || parts.next().is_some()
        || hms.next().is_some()
        || !(1..=31).contains(&day)
        || !(0..=9999).contains(&year)
        || h > 23
        || m > 59
        || sec > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    if days < 0 {
        return Some(0);
    }
    Some(days as u64 * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm); the caller keeps the year within 0..=9999.
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

    const NOV_6_1994: u64 = 784_111_777;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7", 0), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(NOV_6_1994)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", NOV_6_1994 + 5),
            Some(Duration::ZERO)
        );
        // A date ahead is waited for exactly (to the second).
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", NOV_6_1994 - 120),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(parse_retry_after("-3", 0), None);
        assert_eq!(parse_retry_after("1.5", 0), None);
        assert_eq!(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", 0), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 199555555555555554 08:49:37 GMT", 0),
            None
        );
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253_402_300_799)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT trailing", 0),
            None
        );
    }

    #[test]
    fn an_http_date_gives_exactly_the_seconds_until_it() {
        // The wait is the date minus now, to the second: half of it (or any
        // other value) is wrong.
        for ahead in [1u64, 3, 59, 3600, 86_400 * 400] {
            assert_eq!(
                parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", NOV_6_1994 - ahead),
                Some(Duration::from_secs(ahead)),
                "{ahead} s ahead"
            );
        }
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 4),
            Some(Duration::from_secs(6))
        );
    }

    #[test]
    fn absurd_values_saturate_instead_of_overflowing() {
        let huge = parse_retry_after("18446744073709551615", 0).expect("a number");
        assert_eq!(huge, Duration::from_secs(u64::MAX));
        let more = parse_retry_after("99999999999999999999999999", 0).expect("a number");
        assert_eq!(more, Duration::from_secs(u64::MAX));
        assert_eq!(parse_retry_after("Sun, 06 Nov 99999 08:49:37 GMT", 0), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 0001 08:49:37 GMT", 1_000),
            Some(Duration::ZERO)
        );
        let now = std::time::Instant::now();
        assert!(crate::span::clock::instant_after(now, huge) > now);
    }

    #[test]
    fn a_retry_after_within_the_budget_is_waited_exactly() {
        let p = RetryPolicy::new(Duration::from_secs(30));
        let asked = Duration::from_secs(3);
        assert_eq!(
            p.after_failure(1, Some(asked), Duration::from_secs(1), 7),
            RetryStep::Wait(asked)
        );
        // No longer fits: the request is kept and the server's wish is the
        // time the backend counts as down.
        assert_eq!(
            p.after_failure(2, Some(asked), Duration::from_secs(28), 7),
            RetryStep::GiveUp { down_for: asked }
        );
    }

    #[test]
    fn a_retry_after_shorter_than_the_backoff_waits_the_backoff() {
        // Retry-After: 0 (or a date in the past) to every request: the
        // waits still grow as the backoff's, never back to back.
        let p = RetryPolicy::new(Duration::from_secs(30));
        for attempt in 1..=4 {
            assert_eq!(
                p.after_failure(attempt, Some(Duration::ZERO), Duration::ZERO, 0),
                RetryStep::Wait(p.backoff.delay(attempt, 0)),
                "attempt {attempt}"
            );
        }
        assert_eq!(
            p.after_failure(1, Some(Duration::ZERO), Duration::ZERO, 0),
            RetryStep::Wait(Duration::from_millis(50))
        );
    }

    #[test]
    fn a_retry_after_beyond_the_budget_means_probe_again_in_a_second() {
        let p = RetryPolicy::new(Duration::from_secs(30));
        for asked in [31, 99_999_999_999, u64::MAX] {
            assert_eq!(
                p.after_failure(1, Some(Duration::from_secs(asked)), Duration::ZERO, 0),
                RetryStep::GiveUp {
                    down_for: PROBE_INTERVAL
                },
                "Retry-After: {asked}"
            );
        }
    }

    #[test]
    fn without_retry_after_the_backoff_runs_until_the_budget_is_spent() {
        let p = RetryPolicy::new(Duration::from_secs(1));
        assert_eq!(
            p.after_failure(1, None, Duration::ZERO, 0),
            RetryStep::Wait(Duration::from_millis(50))
        );
        assert_eq!(
            p.after_failure(5, None, Duration::from_millis(900), 0),
            RetryStep::GiveUp {
                down_for: PROBE_INTERVAL
            }
        );
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

//! Times and durations as people write and read them: UTC timestamps,
//! `12.5 ms`, `2m 03s`, and `--since` values (a time, or a duration ago).

const NS_PER_SEC: u64 = 1_000_000_000;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count (the inverse of `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-30 12:00:00.123Z`: UTC to the millisecond.
pub fn utc(unix_ns: u64) -> String {
    let secs = (unix_ns / NS_PER_SEC) as i64;
    let ms = unix_ns % NS_PER_SEC / 1_000_000;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// A span's length, to three significant digits where that helps:
/// `850 ns`, `12.3 µs`, `250 ms`, `1.25 s`, `2m 03s`, `1h 02m`.
pub fn duration(ns: u64) -> String {
    let three = |v: f64, unit: &str| {
        if v >= 100.0 {
            format!("{v:.0} {unit}")
        } else if v >= 10.0 {
            format!("{v:.1} {unit}")
        } else {
            format!("{v:.2} {unit}")
        }
    };
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => three(ns as f64 / 1e3, "µs"),
        1_000_000..1_000_000_000 => three(ns as f64 / 1e6, "ms"),
        1_000_000_000..60_000_000_000 => three(ns as f64 / 1e9, "s"),
        _ => {
            let s = ns / NS_PER_SEC;
            if s < 3600 {
                format!("{}m {:02}s", s / 60, s % 60)
            } else if s < 86_400 {
                format!("{}h {:02}m", s / 3600, s / 60 % 60)
            } else {
                format!("{}d {:02}h", s / 86_400, s / 3600 % 24)
            }
        }
    }
}

/// An age, coarser: `5s`, `3m`, `2h 05m`, `4d 03h`.
pub fn age(ns: u64) -> String {
    let s = ns / NS_PER_SEC;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => duration(ns),
    }
}

/// A duration as written on a command line: `500ms`, `90s`, `15m`, `2h`,
/// `1d`, or several (`1h30m`).
pub fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1_000_000,
            "s" => NS_PER_SEC,
            "m" => 60 * NS_PER_SEC,
            "h" => 3600 * NS_PER_SEC,
            "d" => 86_400 * NS_PER_SEC,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// A time as written on a command line: `2026-11-30`, `2026-11-30T12:00`,
/// `2026-11-30 12:00:05.5`, with an optional `Z` or `+01:00` (UTC without
/// one). Returns Unix nanoseconds.
pub fn parse_time(text: &str) -> Option<u64> {
    let t = text.trim();
    let (date, rest) = t.split_at(t.find(['T', ' ']).unwrap_or(t.len()));
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    let mut clock = rest.get(1..).unwrap_or("");
    let mut offset_s: i64 = 0;
    if let Some(stripped) = clock.strip_suffix('Z') {
        clock = stripped;
    } else if let Some(at) = clock.rfind(['+', '-']) {
        let (c, zone) = clock.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (zh, zm) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
        offset_s = sign * (zh.parse::<i64>().ok()? * 3600 + zm.parse::<i64>().ok()? * 60);
        clock = c;
    }
    let mut hms = clock.split(':');
    let h: i64 = hms
        .next()
        .filter(|s| !s.is_empty())
        .map_or(Some(0), |s| s.parse().ok())?;
    let mi: i64 = hms.next().map_or(Some(0), |s| s.parse().ok())?;
    let sec: f64 = hms.next().map_or(Some(0.0), |s| s.parse().ok())?;
    if hms.next().is_some() || h > 23 || mi > 59 || !(0.0..61.0).contains(&sec) {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 - offset_s;
    let ns = secs.checked_mul(NS_PER_SEC as i64)? + (sec * 1e9).round() as i64;
    u64::try_from(ns).ok()
}

/// `--since`/`--until`: a time, or a duration before `now_ns`.
pub fn parse_moment(text: &str, now_ns: u64) -> Option<u64> {
    parse_duration(text)
        .map(|ago| now_ns.saturating_sub(ago))
        .or_else(|| parse_time(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_round_trips_through_parse_time() {
        let t = parse_time("2026-11-30T12:34:56.789Z").expect("time");
        assert_eq!(utc(t), "2026-11-30 12:34:56.789Z");
        assert_eq!(utc(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(
            parse_time("2024-02-29 23:00+01:00"),
            parse_time("2024-02-29T22:00Z")
        );
        assert_eq!(parse_time("2026-11-30"), parse_time("2026-11-30T00:00:00Z"));
        for bad in ["2026-13-01", "yesterday", "2026-11-30T25:00", "2026-11"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_read_and_print() {
        assert_eq!(parse_duration("1h30m"), Some(5400 * NS_PER_SEC));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_moment("10s", 60 * NS_PER_SEC), Some(50 * NS_PER_SEC));
        assert_eq!(duration(850), "850 ns");
        assert_eq!(duration(12_345), "12.3 µs");
        assert_eq!(duration(250_000_000), "250 ms");
        assert_eq!(duration(1_250_000_000), "1.25 s");
        assert_eq!(duration(123 * NS_PER_SEC), "2m 03s");
        assert_eq!(duration(3720 * NS_PER_SEC), "1h 02m");
        assert_eq!(age(5 * NS_PER_SEC), "5s");
    }
}

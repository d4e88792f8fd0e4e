//! Timestamps as the Lambda APIs spell them: RFC 3339 in UTC with milliseconds
//! (`2022-10-12T00:03:50.000Z`).
//!
//! Hand-written rather than taken from `time`/`chrono`/`humantime` because this crate
//! depends on serde alone (it is compiled into every extension) and the format is
//! fixed; the calendar arithmetic is Howard Hinnant's `days_from_civil` algorithm.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch of `t` (0 for times before the epoch).
pub fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    format_epoch_millis(d.as_millis() as u64)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_epoch_millis(ms: u64) -> String {
    let b = epoch_millis_bytes(ms);
    // The bytes are ASCII digits and separators.
    String::from_utf8_lossy(&b).into_owned()
}

/// Appends `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` to `out`, without allocating: a hot path
/// of every encoder (one timestamp per record), so it writes digits itself instead of
/// going through `fmt`.
pub fn push_epoch_millis(out: &mut Vec<u8>, ms: u64) {
    out.extend_from_slice(&epoch_millis_bytes(ms));
}

/// The 24 bytes of `YYYY-MM-DDTHH:MM:SS.mmmZ` (years past 9999 are clamped).
pub fn epoch_millis_bytes(ms: u64) -> [u8; 24] {
    let secs = ms / 1000;
    let millis = (ms % 1000) as u32;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = (secs % 86_400) as u32;
    let y = y.clamp(0, 9999) as u32;
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let put = |b: &mut [u8; 24], at: usize, width: usize, mut v: u32| {
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut b, 0, 4, y);
    put(&mut b, 5, 2, m);
    put(&mut b, 8, 2, d);
    put(&mut b, 11, 2, rem / 3600);
    put(&mut b, 14, 2, (rem / 60) % 60);
    put(&mut b, 17, 2, rem % 60);
    put(&mut b, 20, 3, millis);
    b
}

/// Parses an RFC 3339 timestamp (any fraction length, `Z` or `±hh:mm`) into
/// milliseconds since the epoch. Returns `None` for anything else.
pub fn parse_rfc3339_millis(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let mut v = 0u64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u64::from(c - b'0');
        }
        Some(v)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0u64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)? as i64;
            let om = num(i + 4..i + 6)? as i64;
            let off = oh * 3600 + om * 60;
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + se) as i64 - offset_secs;
    if secs < 0 {
        return None;
    }
    Some(secs as u64 * 1000 + millis)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u64;
    let mp = u64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + u64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i64 - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_epoch_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_epoch_millis(1_665_533_030_000), "2022-10-12T00:03:50.000Z");
        assert_eq!(format_epoch_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_epoch_millis(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        let mut out = b"t=".to_vec();
        push_epoch_millis(&mut out, 1_665_533_030_064);
        assert_eq!(out, b"t=2022-10-12T00:03:50.064Z");
    }

    #[test]
    fn parses_what_it_formats_and_common_variants() {
        for ms in [0u64, 1, 999, 1_665_533_030_064, 951_782_400_123, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339_millis(&format_epoch_millis(ms)), Some(ms));
        }
        assert_eq!(parse_rfc3339_millis("2022-10-12T00:03:50Z"), Some(1_665_533_030_000));
        assert_eq!(parse_rfc3339_millis("2022-10-12T00:03:50.5Z"), Some(1_665_533_030_500));
        assert_eq!(parse_rfc3339_millis("2022-10-12T00:03:50.064123Z"), Some(1_665_533_030_064));
        assert_eq!(parse_rfc3339_millis("2022-10-12T02:03:50.000+02:00"), Some(1_665_533_030_000));
        assert_eq!(parse_rfc3339_millis("2022-10-11T23:03:50.000-01:00"), Some(1_665_533_030_000));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "2022-10-12",
            "2022-13-12T00:00:00Z",
            "2022-10-12T00:00:00",
            "2022-10-12T00:00:00.Z",
            "x022-10-12T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_millis(s), None, "{s}");
        }
    }
}

//! Wall-clock timestamps ([`Timestamp`], every time in an event), and the
//! only place that reads the clocks (clippy.toml enforces it; a custom check
//! asks [`RunContext::now`](crate::RunContext::now)).

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};

/// Reads the monotonic clock.
#[allow(clippy::disallowed_methods)]
pub(crate) fn mono_now() -> Instant {
    Instant::now()
}

/// Reads the wall clock.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// Sleeps the calling thread (never the engine thread, which waits in `poll`).
#[allow(clippy::disallowed_methods)]
pub(crate) fn sleep(d: Duration) {
    std::thread::sleep(d)
}

/// A wall-clock instant, serialised as RFC 3339 UTC with microseconds
/// (`2026-11-27T14:15:42.123456Z`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// Wraps a `SystemTime`.
    pub fn from_system_time(t: SystemTime) -> Self {
        // Events carry microseconds: an event read back from JSON equals the sent one.
        Timestamp::from_unix_micros(Timestamp(t).unix_micros())
    }

    /// The wrapped `SystemTime`.
    pub fn system_time(self) -> SystemTime {
        self.0
    }

    /// Microseconds since the Unix epoch (negative before it).
    pub fn unix_micros(self) -> i64 {
        match self.0.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_micros().min(i64::MAX as u128) as i64,
            Err(e) => -(e.duration().as_micros().min(i64::MAX as u128) as i64),
        }
    }

    /// Builds a timestamp from microseconds since the Unix epoch.
    pub fn from_unix_micros(us: i64) -> Self {
        let t = if us >= 0 {
            UNIX_EPOCH + Duration::from_micros(us as u64)
        } else {
            UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
        };
        Timestamp(t)
    }

    /// Parses RFC 3339 (`Z` or a `±hh:mm` offset, 0 to 9 fraction digits).
    ///
    /// # Examples
    ///
    /// ```
    /// use probewheel::Timestamp;
    /// let t = Timestamp::parse_rfc3339("2026-11-27T15:15:42+01:00").unwrap();
    /// assert_eq!(t.to_string(), "2026-11-27T14:15:42.000000Z");
    /// let err = Timestamp::parse_rfc3339("yesterday").unwrap_err();
    /// assert_eq!(err.to_string(), "not an RFC 3339 timestamp: \"yesterday\"");
    /// ```
    pub fn parse_rfc3339(s: &str) -> Result<Self, ParseTimestampError> {
        parse_rfc3339(s)
            .map(Timestamp::from_unix_micros)
            .ok_or_else(|| ParseTimestampError { text: s.to_owned() })
    }
}

/// Text that is not an RFC 3339 timestamp (or names a day or time that does
/// not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTimestampError {
    text: String,
}

impl fmt::Display for ParseTimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an RFC 3339 timestamp: {:?}", self.text)
    }
}

impl std::error::Error for ParseTimestampError {}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.unix_micros();
        write_date_time(f, us.div_euclid(1_000_000))?;
        write!(f, ".{:06}Z", us.rem_euclid(1_000_000))
    }
}

/// Whole seconds since the Unix epoch, shown as RFC 3339 UTC without a
/// fraction (`2026-12-05T00:00:00Z`): certificate dates in reasons.
#[cfg(feature = "tls")]
pub(crate) struct UtcSeconds(pub(crate) i64);

#[cfg(feature = "tls")]
impl fmt::Display for UtcSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_date_time(f, self.0)?;
        f.write_str("Z")
    }
}

/// `secs` since the Unix epoch as `YYYY-MM-DDThh:mm:ss`, UTC.
fn write_date_time(f: &mut fmt::Formatter<'_>, secs: i64) -> fmt::Result {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, (sod / 60) % 60, sod % 60);
    write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(de::Error::custom)
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01; the inverse of
/// [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let utc = unix_secs_utc(y, mo, d, h, mi, se)?;
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    Some((utc - offset_secs) * 1_000_000 + micros)
}

/// Seconds since the Unix epoch of a UTC date and time, `None` for one that
/// does not exist (month 13, 30 February, 24:00). A leap second (`:60`)
/// counts as the second before it.
pub(crate) fn unix_secs_utc(y: i64, mo: i64, d: i64, h: i64, mi: i64, se: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo as u32) as i64 {
        return None;
    }
    if !(0..=23).contains(&h) || !(0..=59).contains(&mi) || !(0..=60).contains(&se) {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(days * 86_400 + h * 3600 + mi * 60 + se.min(59))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_microseconds_in_utc() {
        let t = Timestamp::from_unix_micros(1_795_788_942_123_456);
        assert_eq!(t.to_string(), "2026-11-27T14:15:42.123456Z");
        assert_eq!(
            Timestamp::from_unix_micros(0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::from_unix_micros(951_782_400_000_001).to_string(),
            "2000-02-29T00:00:00.000001Z"
        );
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let base = Timestamp::parse_rfc3339("2026-11-27T14:15:42.123456Z").unwrap();
        assert_eq!(base.unix_micros(), 1_795_788_942_123_456);
        let off = Timestamp::parse_rfc3339("2026-11-27T15:15:42.123456789+01:00").unwrap();
        assert_eq!(off, base);
        let neg = Timestamp::parse_rfc3339("2026-11-27T13:15:42.123456-01:00").unwrap();
        assert_eq!(neg, base);
        let whole = Timestamp::parse_rfc3339("2026-11-27T14:15:42Z").unwrap();
        assert_eq!(whole.unix_micros(), 1_795_788_942_000_000);
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "2026-11-27",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T14:15:42.Z",
            "2026-11-27T14:15:42",
            "2026-11-27T14:15:42+0100",
            "2026-11-27T14:15:42Zjunk",
        ] {
            assert!(Timestamp::parse_rfc3339(s).is_err(), "{s:?} parsed");
        }
    }

    #[test]
    fn round_trips_through_serde() {
        let t = Timestamp::from_unix_micros(1_795_788_942_000_007);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-27T14:15:42.000007Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn civil_conversion_round_trips() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}

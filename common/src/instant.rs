//! Event time: microseconds since the Unix epoch, UTC. Decoding truncates
//! anything finer than a microsecond, so every comparison in the fold and every
//! rendered timestamp use the same instant.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Micros(pub i64);

impl Micros {
    /// The system clock, now.
    pub fn now() -> Micros {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Micros(i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
    }

    /// Parses an RFC 3339 timestamp with offset. Fractions beyond nanoseconds are
    /// cut before parsing (RFC 3339 allows any number of digits).
    pub fn parse_rfc3339(s: &str) -> Option<Micros> {
        let trimmed;
        let mut text = s;
        if let Some(dot) = s.find('.') {
            let digits = s[dot + 1..].bytes().take_while(u8::is_ascii_digit).count();
            if digits > 9 {
                trimmed = format!("{}{}", &s[..dot + 10], &s[dot + 1 + digits..]);
                text = &trimmed;
            }
        }
        let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let micros = t.unix_timestamp_nanos().div_euclid(1000);
        i64::try_from(micros).ok().map(Micros)
    }

    /// A timestamp in a request: the API's own output format
    /// (`YYYY-MM-DDTHH:MM:SS[.ffffff]`, UTC) or RFC 3339 with an offset.
    pub fn parse_api(s: &str) -> Option<Micros> {
        Micros::parse_rfc3339(s).or_else(|| {
            let bare = s.len() >= 19
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b"-:T.".contains(&b));
            bare.then(|| Micros::parse_rfc3339(&format!("{s}Z")))
                .flatten()
        })
    }

    /// The seed API's style: UTC, `YYYY-MM-DDTHH:MM:SS.ffffff`, no offset. Fixed
    /// width for years 0000-9999, so the text sorts like the instant.
    pub fn render(self) -> String {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000)
            .map(|t| t.to_offset(UtcOffset::UTC));
        match t {
            Ok(t) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.microsecond()
            ),
            // Unreachable for instants that came from parse_rfc3339.
            Err(_) => self.0.to_string(),
        }
    }

    /// Order-preserving big-endian key bytes (sign bit flipped).
    pub fn key_bytes(self) -> [u8; 8] {
        ((self.0 as u64) ^ (1 << 63)).to_be_bytes()
    }

    pub fn from_key_bytes(b: [u8; 8]) -> Micros {
        Micros((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_seed_style() {
        let m = Micros::parse_rfc3339("2018-06-14T11:14:48.946Z").unwrap();
        assert_eq!(m.render(), "2018-06-14T11:14:48.946000");
        let m = Micros::parse_rfc3339("2018-06-14T13:14:48+02:00").unwrap();
        assert_eq!(m.render(), "2018-06-14T11:14:48.000000");
    }

    #[test]
    fn truncates_below_a_microsecond() {
        let a = Micros::parse_rfc3339("2018-06-14T11:14:48.1234569Z").unwrap();
        let b = Micros::parse_rfc3339("2018-06-14T11:14:48.123456999999999999Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.render(), "2018-06-14T11:14:48.123456");
        let pre = Micros::parse_rfc3339("1969-12-31T23:59:59.9999995Z").unwrap();
        assert_eq!(pre.render(), "1969-12-31T23:59:59.999999");
    }

    #[test]
    fn rejects_without_offset_or_garbage() {
        assert!(Micros::parse_rfc3339("2018-06-14T11:14:48").is_none());
        assert!(Micros::parse_rfc3339("yesterday").is_none());
        assert!(Micros::parse_rfc3339("").is_none());
    }

    #[test]
    fn request_times_take_the_api_format_or_rfc3339() {
        let t = Micros::parse_rfc3339("2018-06-14T11:14:48Z").unwrap();
        for s in [
            "2018-06-14T11:14:48",
            "2018-06-14T11:14:48.000000",
            "2018-06-14T11:14:48Z",
            "2018-06-14T13:14:48+02:00",
        ] {
            assert_eq!(Micros::parse_api(s), Some(t), "{s}");
        }
        for s in [
            "2018-06-14",
            "2018-06-14T11:14",
            "2018-06-14T11:14:48 junk",
            "soon",
            "",
        ] {
            assert_eq!(Micros::parse_api(s), None, "{s}");
        }
        assert_eq!(Micros::parse_api(&t.render()), Some(t));
    }

    #[test]
    fn key_bytes_sort_like_instants() {
        let xs = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in xs.windows(2) {
            assert!(Micros(w[0]).key_bytes() < Micros(w[1]).key_bytes());
            assert_eq!(
                Micros::from_key_bytes(Micros(w[0]).key_bytes()),
                Micros(w[0])
            );
        }
    }
}

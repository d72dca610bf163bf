//! Durations as written in templates: `500`, `"500ms"`, `"30s"`, `"1h30m"`.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration in a template. Written as an integer number of milliseconds
/// or as a string of `<integer><unit>` parts, largest unit first, with the
/// units `d`, `h`, `m`, `s` and `ms` (`"500ms"`, `"30s"`, `"5m"`, `"1h30m"`).
/// Millisecond precision; serializes back as the string form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DurationSpec(Duration);

/// A duration string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected milliseconds or parts like \"500ms\", \"30s\", \"5m\", \"1h30m\""
)]
pub struct DurationParseError(pub String);

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl DurationSpec {
    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// The duration.
    pub const fn as_duration(&self) -> Duration {
        self.0
    }

    /// The duration in whole milliseconds (saturating).
    pub fn as_millis(&self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl From<Duration> for DurationSpec {
    /// Truncates to whole milliseconds.
    fn from(d: Duration) -> Self {
        Self::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl FromStr for DurationSpec {
    type Err = DurationParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationParseError(s.to_owned());
        let text = s.trim();
        if text.is_empty() {
            return Err(err());
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse::<u64>()
                .map(Self::from_millis)
                .map_err(|_| err());
        }
        let mut rest = text;
        let mut total: u64 = 0;
        // Index into UNITS of the last unit seen: units must strictly decrease.
        let mut last_unit: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..letters];
            rest = &rest[letters..];
            let idx = UNITS
                .iter()
                .position(|(name, _)| *name == unit)
                .ok_or_else(err)?;
            if last_unit.is_some_and(|l| idx <= l) {
                return Err(err());
            }
            last_unit = Some(idx);
            total = n
                .checked_mul(UNITS[idx].1)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(err)?;
        }
        Ok(Self::from_millis(total))
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        // Days are accepted on input but written as hours.
        for (name, size) in &UNITS[1..] {
            if ms >= *size {
                write!(f, "{}{name}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("milliseconds or a duration string like \"30s\" or \"1h30m\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationSpec, E> {
                Ok(DurationSpec::from_millis(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationSpec, E> {
                u64::try_from(v)
                    .map(DurationSpec::from_millis)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationSpec, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ms(s: &str) -> u64 {
        s.parse::<DurationSpec>().unwrap().as_millis()
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("30s"), 30_000);
        assert_eq!(ms("5m"), 300_000);
        assert_eq!(ms("1h"), 3_600_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("1m30s250ms"), 90_250);
        assert_eq!(ms("2d"), 172_800_000);
        assert_eq!(ms("1500"), 1500);
        assert_eq!(ms(" 10s "), 10_000);
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in [
            "", "s", "10x", "1.5s", "30m1h", "1s1s", "-1s", "1h 30m", "5ms3s",
        ] {
            assert!(bad.parse::<DurationSpec>().is_err(), "{bad:?} parsed");
        }
        assert!("99999999999999999999d".parse::<DurationSpec>().is_err());
    }

    #[test]
    fn serde_accepts_integers_and_strings_and_writes_strings() {
        let d: DurationSpec = serde_json::from_str("1500").unwrap();
        assert_eq!(d.as_duration(), Duration::from_millis(1500));
        let d: DurationSpec = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h30m\"");
        assert!(serde_json::from_str::<DurationSpec>("-5").is_err());
        assert!(serde_json::from_str::<DurationSpec>("1.5").is_err());
        assert_eq!(DurationSpec::from_millis(1500).to_string(), "1s500ms");
        assert_eq!(DurationSpec::from_millis(0).to_string(), "0s");
        assert_eq!(DurationSpec::from_millis(90_000_000).to_string(), "25h");
        let y: DurationSpec = serde_yaml_ng::from_str("250").unwrap();
        assert_eq!(y.as_millis(), 250);
    }
}

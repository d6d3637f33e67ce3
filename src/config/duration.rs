//! Human-readable durations (`250ms`, `5s`, `1m 30s`) in config files.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// A duration written the way people write it. Bare numbers are rejected on purpose:
/// `timeout: 5` is ambiguous (seconds? milliseconds?) and has caused outages elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

/// Longest duration accepted anywhere in a config.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

impl Dur {
    pub const fn ms(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration string such as \"250ms\" or \"5s\"")
        })?;
        if s.trim().starts_with('-') {
            return Err(serde::de::Error::custom(format!(
                "invalid duration {s:?}: a duration cannot be negative"
            )));
        }
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))?;
        // Every duration floatover reads is a timeout, an interval or a delay: nothing
        // needs more than a year, and a bound here keeps deadline arithmetic from
        // overflowing. Fields have tighter bounds of their own (validation).
        if d > MAX {
            return Err(serde::de::Error::custom(format!(
                "duration {s:?} is too long (at most 365 days)"
            )));
        }
        Ok(Dur(d))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// In a generated schema (the FloatGroup CRD), a duration is a string such as `250ms`,
/// `5s` or `1m 30s`; the full check is the config's own.
impl schemars::JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "a duration such as 250ms, 5s or 1m 30s (bare numbers are refused)",
            "pattern": "^[0-9]",
        })
    }
}

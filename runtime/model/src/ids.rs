//! Identifier newtypes. Each id says what it identifies, so a run id can
//! never be passed where a step id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A digest that is not 64 lower-case hex characters.
    #[error("plugin digest must be 64 lower-case hex characters (sha256), got {0:?}")]
    BadDigest(String),
    /// An empty id, or one with characters outside `[A-Za-z0-9_.-]`.
    #[error("{kind} id must be 1-128 characters of [A-Za-z0-9_.-], got {value:?}")]
    BadId {
        /// Which kind of id was malformed.
        kind: &'static str,
        /// The rejected value.
        value: String,
    },
}

/// The sha256 of a plugin's component bytes, lower-case hex. Plugins are
/// content-addressed: the same bytes always have the same digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PluginDigest(String);

impl PluginDigest {
    /// Parses a hex digest, accepting an optional `sha256:` prefix.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(hex.to_owned()))
        } else {
            Err(IdError::BadDigest(s.to_owned()))
        }
    }

    /// Builds a digest from the 32 raw bytes of a sha256 hash.
    pub fn from_sha256(bytes: [u8; 32]) -> Self {
        use fmt::Write;
        let mut s = String::with_capacity(64);
        for b in bytes {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
        }
        Self(s)
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, for display.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for PluginDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

impl TryFrom<String> for PluginDigest {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<PluginDigest> for String {
    fn from(d: PluginDigest) -> String {
        d.0
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A step id, optionally followed by `[digits]`.
fn valid_step_key(s: &str) -> bool {
    match s.split_once('[') {
        None => valid_id(s),
        Some((id, rest)) => {
            valid_id(id)
                && rest.strip_suffix(']').is_some_and(|n| {
                    !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit())
                })
        }
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        string_id!($(#[$doc])* $name, $kind, valid_id);
    };
    ($(#[$doc:meta])* $name:ident, $kind:literal, $valid:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                if $valid(&s) {
                    Ok(Self(s))
                } else {
                    Err(IdError::BadId { kind: $kind, value: s })
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        // Reading an id as text is always fine; only making one is checked.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(
    /// Identifies one workflow run.
    RunId,
    "run"
);
string_id!(
    /// Identifies a step within a workflow template (and so within a run).
    StepId,
    "step"
);
string_id!(
    /// Identifies a workflow template (its name is separate and may change).
    TemplateId,
    "template"
);
string_id!(
    /// Identifies one step instance of a run: the step id, or `id[i]` for
    /// item `i` of a `forEach` step.
    StepKey,
    "step key",
    valid_step_key
);

string_id!(
    /// Identifies a connection: a configured source or destination.
    ConnectionId,
    "connection"
);
string_id!(
    /// Identifies a sync job: a source, a destination and the streams between them.
    SyncJobId,
    "sync job"
);

impl ConnectionId {
    /// A new connection id: a UUIDv7, so ids sort by creation time.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl SyncJobId {
    /// A new job id: a UUIDv7, so ids sort by creation time.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl RunId {
    /// A new run id: a UUIDv7, so ids sort by creation time.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl TemplateId {
    /// A new template id: a UUIDv7, so ids sort by creation time.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// `unknown`: stands in for a template id that cannot be read back.
    pub fn unknown() -> Self {
        Self("unknown".to_owned())
    }
}

impl StepKey {
    /// The key of a step, or of item `item` of a `forEach` step.
    pub fn of(step: &StepId, item: Option<u32>) -> Self {
        match item {
            None => Self(step.as_str().to_owned()),
            Some(i) => Self(format!("{step}[{i}]")),
        }
    }

    /// The step id part of the key (before any `[i]`).
    pub fn step_id(&self) -> &str {
        self.0.split_once('[').map_or(&self.0, |(id, _)| id)
    }

    /// The step the key belongs to.
    pub fn step(&self) -> StepId {
        // A key is a valid step id with an optional `[i]` after it.
        StepId(self.step_id().to_owned())
    }

    /// The item index of a `forEach` item's key.
    pub fn item(&self) -> Option<u32> {
        let (_, rest) = self.0.split_once('[')?;
        rest.strip_suffix(']')?.parse().ok()
    }
}

impl From<StepId> for StepKey {
    fn from(id: StepId) -> Self {
        Self(id.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn digest_round_trips_and_rejects_garbage() {
        let d = PluginDigest::from_sha256([0xab; 32]);
        assert_eq!(d.as_str().len(), 64);
        assert_eq!(PluginDigest::parse(&d.to_string()).ok(), Some(d.clone()));
        assert_eq!(d.short(), "abababababab");
        assert!(PluginDigest::parse("abc").is_err());
        assert!(PluginDigest::parse(&"G".repeat(64)).is_err());
        assert!(
            PluginDigest::parse(&"A".repeat(64)).is_err(),
            "upper case is not canonical"
        );
    }

    #[test]
    fn ids_reject_empty_and_odd_characters() {
        assert!(RunId::new("run-1").is_ok());
        assert!(StepId::new("").is_err());
        assert!(StepId::new("a b").is_err());
        assert!(StepId::new("x".repeat(129)).is_err());
    }

    #[test]
    fn step_keys_are_a_step_id_and_an_optional_item() {
        let id = StepId::new("fetch").expect("a step id");
        let item = StepKey::of(&id, Some(7));
        assert_eq!(item, "fetch[7]");
        assert_eq!((item.step_id(), item.item()), ("fetch", Some(7)));
        let whole = StepKey::of(&id, None);
        assert_eq!((whole.step_id(), whole.item()), ("fetch", None));
        assert_eq!(StepKey::new("fetch[7]").ok(), Some(item));
        for bad in [
            "fetch[",
            "fetch[]",
            "fetch[x]",
            "[1]",
            "fetch[1]x",
            "a b[1]",
        ] {
            assert!(StepKey::new(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&whole).unwrap();
        assert_eq!(json, "\"fetch\"");
        assert!(serde_json::from_str::<StepKey>("\"a[b]\"").is_err());
    }
}

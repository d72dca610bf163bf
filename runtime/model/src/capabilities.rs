//! Capabilities: what a plugin requests, what an admin grants, and the
//! intersection the host enforces at the point of egress.
//!
//! Deny by default: a plugin gets nothing it did not request, and nothing
//! it requested unless an admin granted it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// A malformed host pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern {pattern:?}: {reason}")]
pub struct HostPatternError {
    /// The rejected pattern.
    pub pattern: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// Which network destinations a pattern allows.
///
/// Forms: `*` (any host), `example.com`, `*.example.com` (sub-domains, not
/// the apex), each optionally with `:port`; IP literals (`127.0.0.1:9000`,
/// `[::1]:8080`). A pattern without a port allows any port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostMatch {
    Any,
    Exact(String),
    /// Sub-domains of the stored suffix (without the leading `*.`).
    Subdomains(String),
}

fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl HostPattern {
    /// Parses a pattern.
    pub fn parse(pattern: &str) -> Result<Self, HostPatternError> {
        let err = |reason| HostPatternError {
            pattern: pattern.to_owned(),
            reason,
        };
        let p = pattern.trim();
        if p.is_empty() {
            return Err(err("empty"));
        }
        if p.contains("://") || p.contains('/') {
            return Err(err("give a host (and optional port), not a URL"));
        }
        let (host, port) = split_host_port(p).map_err(err)?;
        if host.is_empty() {
            return Err(err("empty host"));
        }
        if p.starts_with('[') && host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(err("`[...]` must hold an IPv6 address"));
        }
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(err("wildcards are only allowed as a leading `*.`"));
            }
            let suffix = normalize_host(suffix);
            if !is_host_name(&suffix) {
                return Err(err(NOT_A_HOST));
            }
            HostMatch::Subdomains(suffix)
        } else if host.contains('*') {
            return Err(err("wildcards are only allowed as a leading `*.`"));
        } else {
            let host = normalize_host(host);
            if !is_host_name(&host) && host.parse::<std::net::IpAddr>().is_err() {
                return Err(err(NOT_A_HOST));
            }
            HostMatch::Exact(host)
        };
        Ok(Self { host, port })
    }

    /// Whether a destination `host` (name or IP literal, IPv6 without
    /// brackets) on `port` is allowed by this pattern.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        self.port.is_none_or(|p| p == port) && self.matches_host(host)
    }

    /// Whether this pattern allows `host` on some port: the question a DNS
    /// lookup asks, since a name is resolved before the port is used.
    pub fn matches_host(&self, host: &str) -> bool {
        let host = normalize_host(host.trim_start_matches('[').trim_end_matches(']'));
        match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => *h == host,
            HostMatch::Subdomains(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
        }
    }

    /// Whether everything `other` allows is also allowed by `self`.
    pub fn covers(&self, other: &HostPattern) -> bool {
        if let Some(p) = self.port
            && other.port != Some(p)
        {
            return false;
        }
        match (&self.host, &other.host) {
            (HostMatch::Any, _) => true,
            (_, HostMatch::Any) => false,
            (HostMatch::Exact(a), HostMatch::Exact(b)) => a == b,
            (HostMatch::Exact(_), HostMatch::Subdomains(_)) => false,
            (HostMatch::Subdomains(s), HostMatch::Exact(h)) => {
                h.len() > s.len() + 1
                    && h.ends_with(s.as_str())
                    && h.as_bytes()[h.len() - s.len() - 1] == b'.'
            }
            (HostMatch::Subdomains(s), HostMatch::Subdomains(t)) => {
                t == s
                    || (t.len() > s.len() + 1
                        && t.ends_with(s.as_str())
                        && t.as_bytes()[t.len() - s.len() - 1] == b'.')
            }
        }
    }
}

const NOT_A_HOST: &str =
    "not a host name (letters, digits, `-` and `_` in dot-separated labels of 1-63) or IP address";

/// A DNS name: dot-separated labels of 1-63 letters, digits, `-` or `_`
/// (not at either end of a label), 253 characters at most.
fn is_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn split_host_port(p: &str) -> Result<(&str, Option<u16>), &'static str> {
    if let Some(rest) = p.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed `[`")?;
        return match after {
            "" => Ok((host, None)),
            _ => {
                let port = after
                    .strip_prefix(':')
                    .ok_or("expected `:port` after `]`")?;
                Ok((
                    host,
                    Some(port.parse().map_err(|_| "port must be 0-65535")?),
                ))
            }
        };
    }
    match p.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Ok((p, None)),
        Some((host, port)) => Ok((
            host,
            Some(port.parse().map_err(|_| "port must be 0-65535")?),
        )),
        None => Ok((p, None)),
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            HostMatch::Any => "*".to_owned(),
            HostMatch::Exact(h) if h.contains(':') => format!("[{h}]"),
            HostMatch::Exact(h) => h.clone(),
            HostMatch::Subdomains(s) => format!("*.{s}"),
        };
        match self.port {
            Some(p) => write!(f, "{host}:{p}"),
            None => f.write_str(&host),
        }
    }
}

impl TryFrom<String> for HostPattern {
    type Error = HostPatternError;
    fn try_from(s: String) -> Result<Self, HostPatternError> {
        Self::parse(&s)
    }
}

impl From<HostPattern> for String {
    fn from(p: HostPattern) -> String {
        p.to_string()
    }
}

/// What a plugin's manifest asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedCapabilities {
    /// Hosts reachable over `wasi:http` and `wasi:sockets`.
    pub outbound_hosts: Vec<HostPattern>,
    /// Guest paths the plugin wants preopened.
    pub directories: Vec<String>,
    /// Environment variable names.
    pub env: Vec<String>,
    /// Secret names readable through `host.secret`.
    pub secrets: Vec<String>,
}

/// A host directory an admin maps into a plugin's sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryGrant {
    /// The path the plugin requested and sees.
    pub guest_path: String,
    /// The directory on the host.
    pub host_path: PathBuf,
    /// Read-only unless the admin says otherwise.
    #[serde(default = "default_true")]
    pub read_only: bool,
}

fn default_true() -> bool {
    true
}

/// What an admin granted a plugin when enabling it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityGrants {
    /// Hosts the plugin may reach.
    #[serde(default)]
    pub outbound_hosts: Vec<HostPattern>,
    /// Directories mapped into the sandbox.
    #[serde(default)]
    pub directories: Vec<DirectoryGrant>,
    /// Environment variable names passed through from the host process.
    #[serde(default)]
    pub env: Vec<String>,
    /// Secret names the plugin may read.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// The capabilities the host enforces: requested ∩ granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveGrants {
    /// Allowed network destinations.
    pub outbound_hosts: Vec<HostPattern>,
    /// Preopened directories.
    pub directories: Vec<DirectoryGrant>,
    /// Environment variable names.
    pub env: Vec<String>,
    /// Secret names.
    pub secrets: Vec<String>,
}

impl EffectiveGrants {
    /// Intersects a manifest's request with an admin's grant. A granted host
    /// pattern survives only when some requested pattern covers it, so a
    /// grant can never widen what the plugin declared.
    pub fn intersect(requested: &RequestedCapabilities, granted: &CapabilityGrants) -> Self {
        Self {
            outbound_hosts: granted
                .outbound_hosts
                .iter()
                .filter(|g| requested.outbound_hosts.iter().any(|r| r.covers(g)))
                .cloned()
                .collect(),
            directories: granted
                .directories
                .iter()
                .filter(|d| requested.directories.contains(&d.guest_path))
                .cloned()
                .collect(),
            env: granted
                .env
                .iter()
                .filter(|e| requested.env.contains(e))
                .cloned()
                .collect(),
            secrets: granted
                .secrets
                .iter()
                .filter(|s| requested.secrets.contains(s))
                .cloned()
                .collect(),
        }
    }

    /// Whether any granted pattern allows `host:port`.
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        self.outbound_hosts.iter().any(|p| p.matches(host, port))
    }

    /// Whether any granted pattern allows `host` on some port (DNS lookups
    /// of a name happen before the port is known).
    pub fn allows_host_name(&self, host: &str) -> bool {
        self.outbound_hosts.iter().any(|p| p.matches_host(host))
    }

    /// Whether the plugin may read the named secret.
    pub fn allows_secret(&self, name: &str) -> bool {
        self.secrets.iter().any(|s| s == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn patterns_match_hosts_and_ports() {
        assert!(p("example.com").matches("EXAMPLE.com.", 443));
        assert!(!p("example.com").matches("api.example.com", 443));
        assert!(p("*.example.com").matches("api.example.com", 80));
        assert!(!p("*.example.com").matches("example.com", 80));
        assert!(!p("*.example.com").matches("badexample.com", 80));
        assert!(p("example.com:8443").matches("example.com", 8443));
        assert!(!p("example.com:8443").matches("example.com", 443));
        assert!(p("127.0.0.1:9000").matches("127.0.0.1", 9000));
        assert!(p("[::1]:8080").matches("::1", 8080));
        assert!(p("[::1]:8080").matches("[::1]", 8080));
        assert!(p("*").matches("anything.test", 1));
        assert_eq!(p("[::1]:8080").to_string(), "[::1]:8080");
    }

    #[test]
    fn host_names_match_on_any_port() {
        assert!(p("db.internal:5432").matches_host("DB.internal."));
        assert!(p("*.example.com").matches_host("api.example.com"));
        assert!(!p("*.example.com").matches_host("example.com"));
        assert!(!p("api.example.com").matches_host("evil.test"));
        assert!(p("*").matches_host("anything.test"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in [
            "",
            "https://x.com",
            "x.com/path",
            "a.*.com",
            "x.com:99999",
            "*.",
            "[::1",
            "bad host!",
            "a..b",
            "-x.com",
            "*.exa mple.com",
            "[not-an-ip]",
            "ex\u{e4}mple.com",
        ] {
            assert!(
                HostPattern::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn grants_never_widen_the_request() {
        let requested = RequestedCapabilities {
            outbound_hosts: vec![p("*.example.com")],
            env: vec!["A".into()],
            secrets: vec!["token".into()],
            directories: vec!["/data".into()],
        };
        let granted = CapabilityGrants {
            outbound_hosts: vec![p("api.example.com"), p("evil.test"), p("*")],
            env: vec!["A".into(), "B".into()],
            secrets: vec!["other".into()],
            directories: vec![
                DirectoryGrant {
                    guest_path: "/data".into(),
                    host_path: "/tmp".into(),
                    read_only: true,
                },
                DirectoryGrant {
                    guest_path: "/etc".into(),
                    host_path: "/etc".into(),
                    read_only: true,
                },
            ],
        };
        let eff = EffectiveGrants::intersect(&requested, &granted);
        assert_eq!(eff.outbound_hosts, vec![p("api.example.com")]);
        assert_eq!(eff.env, vec!["A".to_string()]);
        assert!(eff.secrets.is_empty());
        assert_eq!(eff.directories.len(), 1);
        assert!(eff.allows_host("api.example.com", 443));
        assert!(!eff.allows_host("evil.test", 443));
    }
}

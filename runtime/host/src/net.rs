//! `wasi:sockets` policy: which names a plugin may resolve and which
//! addresses it may bind and connect to.
//!
//! Grants name hosts (`db.internal:5432`, `*.example.com`) but sockets see
//! only IP addresses. So the host resolves names itself and remembers, per
//! invocation, which IPs it handed to the plugin for which granted name; a
//! connect is allowed to an IP-literal grant or to an IP the invocation
//! resolved from a name whose grant allows the port. Lookups of names no
//! grant covers are refused (`access-denied`): resolving arbitrary names
//! would be an exfiltration channel even without a connection.
//!
//! UDP stays disabled (the sandbox never calls `allow_udp`): grants are
//! destinations for streams, and an unconnected UDP socket could both send
//! to and receive from anyone. TCP listening is refused too; plugins are
//! clients.

use crate::egress::DenialLog;
use crate::sandbox::SandboxState;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::SocketError;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{
    self, ErrorCode, HostNetwork, IpAddress, Network,
};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsCtxView, WasiSocketsView};
use weft_model::EffectiveGrants;

/// One invocation's socket policy and what it resolved so far.
pub(crate) struct NetPolicy {
    grants: Arc<EffectiveGrants>,
    denials: DenialLog,
    state: Mutex<Resolved>,
}

#[derive(Default)]
struct Resolved {
    /// The name each open lookup stream resolves, by resource rep.
    streams: HashMap<u32, String>,
    /// The names each IP handed to the plugin was resolved from.
    names_by_ip: HashMap<IpAddr, HashSet<String>>,
}

impl NetPolicy {
    pub(crate) fn new(grants: Arc<EffectiveGrants>, denials: DenialLog) -> Self {
        Self {
            grants,
            denials,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, Resolved> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `name` may be resolved: an IP literal (no DNS involved) or a
    /// name some grant covers on any port.
    pub(crate) fn allows_lookup(&self, name: &str) -> bool {
        parse_ip_literal(name).is_some() || self.grants.allows_host_name(name)
    }

    /// Whether the socket operation on `addr` is allowed; records a denial
    /// when it is not.
    pub(crate) fn check(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let denied = match use_ {
            // Binding to the wildcard address on an ephemeral port is what
            // every connect does implicitly; it reaches nothing.
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => (!(addr.ip().is_unspecified()
                && addr.port() == 0))
                .then(|| format!("binding a socket to {addr} is not allowed")),
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => (!self.allows_connect(addr))
                .then(|| format!("socket connection to {addr} is not granted")),
            SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => Some(format!(
                "listening for connections on {addr} is not allowed"
            )),
            SocketAddrUse::UdpReceive => Some(format!("receiving UDP from {addr} is not allowed")),
        };
        match denied {
            Some(what) => {
                self.denials.record(what);
                false
            }
            None => true,
        }
    }

    /// An IP-literal grant, or a name this invocation resolved to `addr`'s
    /// IP whose grant allows the port.
    fn allows_connect(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        if self.grants.allows_host(&ip.to_string(), addr.port()) {
            return true;
        }
        self.state().names_by_ip.get(&ip).is_some_and(|names| {
            names
                .iter()
                .any(|name| self.grants.allows_host(name, addr.port()))
        })
    }

    fn lookup_started(&self, rep: u32, name: String) {
        self.state().streams.insert(rep, name);
    }

    /// Remembers that the stream `rep` handed `ip` to the plugin.
    fn resolved(&self, rep: u32, ip: IpAddr) {
        let mut state = self.state();
        if let Some(name) = state.streams.get(&rep).cloned() {
            state
                .names_by_ip
                .entry(ip.to_canonical())
                .or_default()
                .insert(name);
        }
    }

    fn lookup_dropped(&self, rep: u32) {
        self.state().streams.remove(&rep);
    }
}

/// `10.0.0.1`, `::1` or `[::1]`.
fn parse_ip_literal(name: &str) -> Option<IpAddr> {
    name.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn to_ip(addr: &IpAddress) -> IpAddr {
    match *addr {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h))
        }
    }
}

/// `wasi:sockets/ip-name-lookup` as the plugin sees it: wasmtime-wasi's
/// resolver behind the invocation's [`NetPolicy`].
pub(crate) struct GuardedLookup<'a> {
    sockets: WasiSocketsCtxView<'a>,
    policy: Option<Arc<NetPolicy>>,
}

struct GuardedLookupData;

impl HasData for GuardedLookupData {
    type Data<'a> = GuardedLookup<'a>;
}

fn guarded_lookup(state: &mut SandboxState) -> GuardedLookup<'_> {
    let policy = state.net.clone();
    GuardedLookup {
        sockets: state.sockets(),
        policy,
    }
}

/// Replaces wasmtime-wasi's `ip-name-lookup` in `linker` (which already
/// holds the rest of WASI) with the guarded one.
pub(crate) fn shadow_ip_name_lookup(linker: &mut Linker<SandboxState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added =
        ip_name_lookup::add_to_linker::<SandboxState, GuardedLookupData>(linker, guarded_lookup);
    linker.allow_shadowing(false);
    added
}

// `ip-name-lookup` uses `network`'s types, so its bindings require the
// `network` traits too; they only delegate.
impl network::Host for GuardedLookup<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.sockets, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<network::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.sockets, err)
    }
}

impl HostNetwork for GuardedLookup<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        HostNetwork::drop(&mut self.sockets, this)
    }
}

impl Host for GuardedLookup<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        // No policy means no outbound grant at all: wasmtime-wasi refuses
        // lookups itself (`allow_ip_name_lookup` is off).
        let Some(policy) = self.policy.clone() else {
            return Host::resolve_addresses(&mut self.sockets, network, name);
        };
        if !policy.allows_lookup(&name) {
            policy
                .denials
                .record(format!("DNS lookup of {name:?} is not granted"));
            return Err(ErrorCode::AccessDenied.into());
        }
        let stream = Host::resolve_addresses(&mut self.sockets, network, name.clone())?;
        policy.lookup_started(stream.rep(), name);
        Ok(stream)
    }
}

impl HostResolveAddressStream for GuardedLookup<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let rep = stream.rep();
        let next = HostResolveAddressStream::resolve_next_address(&mut self.sockets, stream)?;
        if let (Some(policy), Some(addr)) = (&self.policy, &next) {
            policy.resolved(rep, to_ip(addr));
        }
        Ok(next)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.sockets, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        if let Some(policy) = &self.policy {
            policy.lookup_dropped(stream.rep());
        }
        HostResolveAddressStream::drop(&mut self.sockets, stream)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use weft_model::HostPattern;

    fn policy(hosts: &[&str]) -> NetPolicy {
        let grants = EffectiveGrants {
            outbound_hosts: hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            ..Default::default()
        };
        NetPolicy::new(Arc::new(grants), DenialLog::default())
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn implicit_binds_are_not_egress_but_connects_are() {
        let p = policy(&["127.0.0.1:5432"]);
        assert!(p.check(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(p.check(addr("[::]:0"), SocketAddrUse::TcpBind));
        assert!(p.check(addr("127.0.0.1:5432"), SocketAddrUse::TcpConnect));
        assert!(p.denials.first().is_none());
        assert!(!p.check(addr("127.0.0.1:5433"), SocketAddrUse::TcpConnect));
        assert!(!p.check(addr("0.0.0.0:8080"), SocketAddrUse::TcpBind));
        assert!(!p.check(addr("0.0.0.0:0"), SocketAddrUse::TcpListen));
        assert_eq!(
            p.denials.first().as_deref(),
            Some("socket connection to 127.0.0.1:5433 is not granted")
        );
    }

    #[test]
    fn resolved_ips_are_allowed_on_their_names_ports() {
        let p = policy(&["db.internal:5432", "*.example.com"]);
        assert!(p.allows_lookup("db.internal"));
        assert!(p.allows_lookup("api.example.com"));
        assert!(p.allows_lookup("10.1.2.3"));
        assert!(p.allows_lookup("[::1]"));
        assert!(!p.allows_lookup("exfil.attacker.test"));
        assert!(!p.allows_lookup("example.com"));

        let ip = addr("10.1.2.3:5432");
        assert!(!p.check(ip, SocketAddrUse::TcpConnect), "not resolved yet");
        p.lookup_started(7, "db.internal".into());
        p.resolved(7, ip.ip());
        p.lookup_dropped(7);
        assert!(p.check(ip, SocketAddrUse::TcpConnect));
        assert!(
            !p.check(addr("10.1.2.3:22"), SocketAddrUse::TcpConnect),
            "the name's grant is for 5432 only"
        );
        // A stream the policy does not know (dropped) records nothing.
        p.resolved(7, addr("10.9.9.9:0").ip());
        assert!(!p.check(addr("10.9.9.9:5432"), SocketAddrUse::TcpConnect));
    }
}

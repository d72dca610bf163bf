//! Step types that use `wasi:sockets` directly through `std::net`:
//! `tcp-echo` (resolve if needed, connect, write, read the reply) and
//! `resolve` (a bare DNS lookup).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use weft_plugin_sdk::prelude::*;

/// `tcp-echo`: connects to `address`, writes `message`, closes its write
/// half and returns everything the peer sent back.
pub struct TcpEcho;

/// Input of `tcp-echo`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TcpEchoInput {
    /// `host:port`; a host name is resolved first.
    pub address: String,
    /// What to send.
    pub message: String,
}

/// Output of `tcp-echo`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TcpEchoOutput {
    /// What the peer sent back (lossy UTF-8).
    pub reply: String,
}

impl Step for TcpEcho {
    const NAME: &'static str = "tcp-echo";
    const DESCRIPTION: &'static str =
        "Connects to `address` over TCP, sends `message` and returns the reply.";
    type Input = TcpEchoInput;
    type Output = TcpEchoOutput;

    fn run(
        &self,
        _: &StepContext,
        input: TcpEchoInput,
    ) -> Result<Outcome<TcpEchoOutput>, PluginError> {
        let io = |what: &str, e: std::io::Error| {
            PluginError::transient(format!("{what} {}: {e}", input.address))
        };
        let mut stream =
            TcpStream::connect(input.address.as_str()).map_err(|e| io("connect", e))?;
        stream
            .write_all(input.message.as_bytes())
            .map_err(|e| io("write", e))?;
        stream
            .shutdown(Shutdown::Write)
            .map_err(|e| io("shutdown", e))?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).map_err(|e| io("read", e))?;
        Ok(Outcome::Done(TcpEchoOutput {
            reply: String::from_utf8_lossy(&reply).into_owned(),
        }))
    }
}

/// `resolve`: resolves `name` with the system resolver.
pub struct Resolve;

/// Input of `resolve`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResolveInput {
    /// The host name to resolve.
    pub name: String,
}

/// Output of `resolve`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ResolveOutput {
    /// The addresses, as text.
    pub addresses: Vec<String>,
}

impl Step for Resolve {
    const NAME: &'static str = "resolve";
    const DESCRIPTION: &'static str = "Resolves `name`; a lookup error is a transient error.";
    type Input = ResolveInput;
    type Output = ResolveOutput;

    fn run(
        &self,
        _: &StepContext,
        input: ResolveInput,
    ) -> Result<Outcome<ResolveOutput>, PluginError> {
        let addresses = (input.name.as_str(), 0)
            .to_socket_addrs()
            .map_err(|e| PluginError::transient(format!("cannot resolve {}: {e}", input.name)))?
            .map(|a| a.ip().to_string())
            .collect();
        Ok(Outcome::Done(ResolveOutput { addresses }))
    }
}

//! A long-lived plugin session: one store and one instance kept for many
//! calls (a connector's whole check, discover or sync), with a wall clock
//! and CPU budget for the session and a deadline per call.

use crate::budget::MemoryReservation;
use crate::engine::HostEngine;
use crate::error::InvokeError;
use crate::events::InvocationObserver;
use crate::install::LoadedPlugin;
use crate::invoke::{Finish, classify_trap, new_store, race};
use crate::sandbox::{SandboxSpec, SandboxState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmtime::Store;
use wasmtime::component::Instance;
use weft_model::InvocationLimits;

/// What a session runs with besides the plugin.
#[derive(Clone, Default)]
pub struct SessionOptions {
    /// Limits for the whole session (wall clock and CPU are cumulative);
    /// the host's defaults when `None`.
    pub limits: Option<InvocationLimits>,
    /// Longest one call may take; the session's wall clock when `None`.
    pub call_timeout: Option<Duration>,
    /// Secret values by name; only granted names are readable.
    pub secrets: Arc<HashMap<String, String>>,
    /// Receives the plugin's logs as they happen.
    pub observer: Option<Arc<dyn InvocationObserver>>,
    /// Stops the session: `cancelled()` turns true, and the plugin is
    /// stopped after the grace period (at most a second).
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOptions")
            .field("limits", &self.limits)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

/// Cancellation stops a connector within this, whatever its limits say.
const MAX_CANCEL_GRACE: Duration = Duration::from_millis(500);

/// One instantiated plugin and its store.
pub(crate) struct Session {
    pub(crate) store: Store<SandboxState>,
    pub(crate) instance: Instance,
    pub(crate) plugin: Arc<LoadedPlugin>,
    limits: InvocationLimits,
    deadline: Instant,
    call_timeout: Duration,
    cancel: CancellationToken,
    /// Set once a call failed in a way that leaves the instance unusable.
    poisoned: bool,
    _reservation: MemoryReservation,
}

impl Session {
    /// Reserves memory, builds the sandbox and instantiates the plugin.
    pub(crate) async fn open(
        host: &HostEngine,
        plugin: Arc<LoadedPlugin>,
        options: SessionOptions,
    ) -> Result<Self, InvokeError> {
        let mut limits = options
            .limits
            .unwrap_or_else(|| host.config.default_limits.clone());
        limits.max_memory_bytes = limits
            .max_memory_bytes
            .min(host.config.memory_ceiling_bytes);
        limits.cancel_grace = limits.cancel_grace.min(MAX_CANCEL_GRACE);
        let deadline = Instant::now() + limits.timeout;
        let cancel = options.cancel;
        let reservation = tokio::select! {
            biased;
            r = host.budget.reserve(limits.max_memory_bytes) => r?,
            () = cancel.cancelled() => return Err(InvokeError::Cancelled),
            () = tokio::time::sleep_until(deadline) => return Err(InvokeError::Timeout(limits.timeout)),
        };
        let spec = SandboxSpec {
            grants: plugin.grants(),
            secrets: options.secrets,
            observer: options.observer,
            cancel: cancel.clone(),
            limits: limits.clone(),
        };
        let mut store = new_store(host, SandboxState::new(spec, host.config.epoch_tick)?);
        let finish = race(
            plugin.pre.instantiate_async(&mut store),
            deadline,
            &cancel,
            limits.cancel_grace,
        )
        .await;
        let instance = match finish {
            Finish::Done(Ok(i)) => i,
            Finish::Done(Err(e)) => return Err(InvokeError::Instantiate(format!("{e:#}"))),
            Finish::TimedOut => return Err(InvokeError::Timeout(limits.timeout)),
            Finish::Cancelled => return Err(InvokeError::Cancelled),
        };
        Ok(Self {
            store,
            instance,
            plugin,
            call_timeout: options.call_timeout.unwrap_or(limits.timeout),
            limits,
            deadline,
            cancel,
            poisoned: false,
            _reservation: reservation,
        })
    }

    /// Runs one call against the instance, raced against the call's and
    /// the session's deadlines and cancellation; a trap, a limit or a
    /// capability denial becomes the specific [`InvokeError`].
    pub(crate) async fn call<T, F>(&mut self, f: F) -> Result<T, InvokeError>
    where
        F: AsyncFnOnce(&mut Store<SandboxState>, &Instance) -> wasmtime::Result<T>,
    {
        if self.poisoned {
            return Err(InvokeError::Trap {
                message: "the connector's instance failed earlier in this session".into(),
            });
        }
        let call_deadline = (Instant::now() + self.call_timeout).min(self.deadline);
        let instance = self.instance;
        let finish = race(
            f(&mut self.store, &instance),
            call_deadline,
            &self.cancel,
            self.limits.cancel_grace,
        )
        .await;
        let result = match finish {
            Finish::Done(Ok(v)) => Ok(v),
            Finish::Done(Err(e)) => {
                let stderr = self.store.data_mut().io.flush_stdio();
                Err(classify_trap(&e, self.store.data(), &self.limits, &stderr))
            }
            Finish::TimedOut if call_deadline < self.deadline => {
                Err(InvokeError::Timeout(self.call_timeout))
            }
            Finish::TimedOut => Err(InvokeError::Timeout(self.limits.timeout)),
            Finish::Cancelled => Err(InvokeError::Cancelled),
        };
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// A plugin error, unless a capability denial explains it better.
    pub(crate) fn plugin_failure(
        &self,
        err: crate::bindings::latest::types::PluginError,
    ) -> ConnectorFailure {
        if let Some(denied) = self.store.data().io.denials.first() {
            return ConnectorFailure::Host(InvokeError::CapabilityDenied(format!(
                "{denied} (the plugin said: {})",
                err.message
            )));
        }
        ConnectorFailure::Plugin(crate::invoke::plugin_error(err))
    }

    /// Whether the session can still be called (no trap, timeout or cancel so far).
    pub(crate) fn usable(&self) -> bool {
        !self.poisoned
    }
}

/// Why a connector call failed: the plugin said so, or the host stopped it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorFailure {
    /// The connector returned an error (bad credentials, unreachable host…).
    #[error("{}", .0.message)]
    Plugin(weft_model::PluginError),
    /// The host stopped or refused it (trap, limit, capability, timeout).
    #[error(transparent)]
    Host(#[from] InvokeError),
}

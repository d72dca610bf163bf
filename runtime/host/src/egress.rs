//! Capability enforcement at the point of egress: every outgoing
//! `wasi:http` request and every socket address is checked against the
//! plugin's effective grants. Denials are recorded so the invocation can
//! report *why* the plugin failed.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};
use weft_model::EffectiveGrants;

/// Denials recorded during one invocation, shared with the invocation.
#[derive(Clone, Default)]
pub(crate) struct DenialLog(Arc<Mutex<Vec<String>>>);

impl DenialLog {
    pub(crate) fn record(&self, what: String) {
        tracing::info!(denied = %what, "plugin egress denied");
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(what);
    }

    pub(crate) fn first(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first()
            .cloned()
    }
}

/// `wasi:http` hooks that enforce the outbound host allow-list.
pub(crate) struct EgressHooks {
    pub(crate) grants: Arc<EffectiveGrants>,
    pub(crate) denials: DenialLog,
    /// Upper bound for connect and first-byte timeouts (the invocation's
    /// remaining wall-clock time); the plugin may ask for less.
    pub(crate) max_timeout: Duration,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !self.grants.allows_host(&host, port) {
            self.denials
                .record(format!("outbound HTTP to {host}:{port} is not granted"));
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let max = self.max_timeout;
        let mut options = options.unwrap_or_default();
        let clamp = |t: Option<Duration>| Some(t.map_or(max, |t| t.min(max)));
        options.connect_timeout = clamp(options.connect_timeout);
        options.first_byte_timeout = clamp(options.first_byte_timeout);
        options.between_bytes_timeout = clamp(options.between_bytes_timeout);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

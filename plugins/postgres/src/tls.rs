//! TLS for the wire client: PostgreSQL's `SSLRequest` negotiation, then
//! rustls over the same socket. The crypto provider is RustCrypto's
//! (`rustls-rustcrypto`), pure Rust, so the guest builds for wasm32 with no
//! C toolchain (ring and aws-lc need a clang with a wasm backend).
//!
//! The modes follow libpq's `sslmode`: `prefer` and `require` encrypt
//! without checking who answers (unless a root certificate is given, when
//! `require` checks the chain as `verify-ca` does), `verify-ca` checks the
//! chain, `verify-full` the chain and the host name.

use crate::wire::WireError;
use bytes::BytesMut;
use postgres_protocol::message::frontend;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, ClientConnection, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme, StreamOwned,
};
use schemars::JsonSchema;
use serde::Deserialize;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

/// Whether and how to use TLS (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not
    /// checked.
    #[default]
    Prefer,
    /// TLS or fail; the certificate is checked only against `sslRootCert`
    /// when one is given.
    Require,
    /// TLS with a certificate chain that ends in a trusted root
    /// (`sslRootCert`, else the Mozilla roots).
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host.
    VerifyFull,
}

/// The TLS settings of a connection.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// The mode.
    pub mode: SslMode,
    /// PEM root certificates to trust instead of the Mozilla roots.
    pub root_cert: Option<String>,
}

/// A connection's byte stream, plain or encrypted.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Asks the server for TLS as `options` say and, when it agrees, runs the
/// handshake; the stream to speak the protocol on.
pub fn negotiate(
    mut tcp: TcpStream,
    host: &str,
    options: &TlsOptions,
) -> Result<Stream, WireError> {
    if options.mode == SslMode::Disable {
        return Ok(Stream::Plain(tcp));
    }
    // Built before asking, so a bad root certificate fails before any I/O.
    let config = client_config(options)?;
    let mut request = BytesMut::with_capacity(8);
    frontend::ssl_request(&mut request);
    tcp.write_all(&request)?;
    // Exactly one byte: anything the server sent after it must be TLS
    // records, never plaintext slipped in ahead of the handshake.
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)?;
    match answer[0] {
        b'S' => {}
        b'N' if options.mode == SslMode::Prefer => return Ok(Stream::Plain(tcp)),
        b'N' => {
            return Err(WireError::Tls(format!(
                "the server does not accept TLS connections (sslMode {})",
                mode_name(options.mode)
            )));
        }
        other => {
            return Err(WireError::Protocol(format!(
                "unexpected answer {other:#04x} to the TLS request"
            )));
        }
    }
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| WireError::Tls(format!("{host:?} is not a valid TLS server name")))?;
    let mut conn =
        ClientConnection::new(config, name).map_err(|e| WireError::Tls(e.to_string()))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(handshake_error)?;
    }
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
}

fn mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// A rustls verdict (a certificate refused, an alert) is the TLS setup's
/// fault, not the network's; anything else stays an I/O error.
fn handshake_error(e: io::Error) -> WireError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => WireError::Tls(tls.to_string()),
        None => WireError::Io(e),
    }
}

fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, WireError> {
    let provider = Arc::new(rustls_rustcrypto::provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| WireError::Tls(e.to_string()))?;
    let checks_chain = match options.mode {
        SslMode::Disable | SslMode::Prefer => false,
        SslMode::Require => options.root_cert.is_some(),
        SslMode::VerifyCa | SslMode::VerifyFull => true,
    };
    let config = if !checks_chain {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth()
    } else {
        let roots = Arc::new(root_store(options.root_cert.as_deref())?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| WireError::Tls(e.to_string()))?;
        let verifier: Arc<dyn ServerCertVerifier> = if options.mode == SslMode::VerifyFull {
            webpki
        } else {
            Arc::new(AnyName(webpki))
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn root_store(pem: Option<&str>) -> Result<RootCertStore, WireError> {
    let Some(pem) = pem else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| WireError::Tls(format!("sslRootCert is not PEM: {e}")))?;
        store.add(cert).map_err(|e| {
            WireError::Tls(format!("sslRootCert holds an unusable certificate: {e}"))
        })?;
    }
    if store.is_empty() {
        return Err(WireError::Tls("sslRootCert holds no certificate".into()));
    }
    Ok(store)
}

/// Accepts any certificate but still checks that the server holds its key,
/// which is what libpq's `prefer` and `require` give.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain must be trusted, the name in it does not matter.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_certificate_that_is_not_pem_is_refused_before_connecting() {
        let options = TlsOptions {
            mode: SslMode::VerifyFull,
            root_cert: Some("not a certificate".into()),
        };
        let Err(WireError::Tls(m)) = client_config(&options) else {
            panic!("accepted");
        };
        assert!(m.contains("no certificate"), "{m}");
    }

    #[test]
    fn every_mode_builds_a_configuration() {
        for mode in [
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            let options = TlsOptions {
                mode,
                root_cert: None,
            };
            assert!(client_config(&options).is_ok(), "{mode:?}");
        }
    }
}

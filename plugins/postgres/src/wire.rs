//! A small blocking PostgreSQL client over `std::net` (which is
//! `wasi:sockets` inside the component, checked by the host against the
//! admin's grant). `postgres-protocol` encodes and decodes every message
//! and computes SCRAM-SHA-256 and md5 answers; this module only sequences
//! them: start-up and authentication, simple queries with text results,
//! and `COPY … TO STDOUT` / `COPY … FROM STDIN` streamed in both directions.
//!
//! Blocking fits the connector contract, where the host pulls one batch at
//! a time: a COPY that is not read further simply waits in the socket
//! buffers, and the server waits with it.

use crate::tls::{self, Stream, TlsOptions};
use bytes::{Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::{Header, Message};
use postgres_protocol::message::frontend;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Largest message accepted from the server. PostgreSQL's own limit for a
/// field is 1 GB; anything near it is not a row a connector should buffer.
const MAX_MESSAGE: usize = 256 << 20;
/// Bytes buffered before COPY data is sent.
const COPY_FLUSH: usize = 1 << 20;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 256 << 10;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ConnectParams {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database role.
    pub user: String,
    /// The role's password.
    pub password: String,
    /// Database name.
    pub database: String,
    /// Whether and how to encrypt.
    pub tls: TlsOptions,
}

/// An error the server sent (`ErrorResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// SQLSTATE, e.g. `28P01`.
    pub code: String,
    /// The primary message.
    pub message: String,
    /// The optional detail line.
    pub detail: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// What can go wrong talking to the server.
#[derive(Debug)]
pub enum WireError {
    /// The connection could not be made or broke.
    Io(io::Error),
    /// The server answered with an error.
    Server(ServerError),
    /// The server sent something this client does not expect.
    Protocol(String),
    /// The server asks for an authentication method this client lacks.
    UnsupportedAuth(String),
    /// TLS could not be set up: refused by the server, or its certificate
    /// is not trusted.
    Tls(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Server(e) => write!(f, "{e}"),
            WireError::Protocol(m) => write!(f, "protocol error: {m}"),
            WireError::UnsupportedAuth(m) => write!(f, "unsupported authentication: {m}"),
            WireError::Tls(m) => write!(f, "TLS: {m}"),
        }
    }
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

/// One row of a simple query's result, as text; `None` is SQL NULL.
pub type TextRow = Vec<Option<String>>;

/// An open connection.
pub struct Client {
    stream: Stream,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

impl Client {
    /// Connects and authenticates (cleartext, md5 or SCRAM-SHA-256).
    pub fn connect(params: &ConnectParams) -> Result<Self, WireError> {
        let tcp = TcpStream::connect((params.host.as_str(), params.port))?;
        // Small control messages must not wait for Nagle; large COPY data
        // is buffered by us anyway.
        let _ = tcp.set_nodelay(true);
        let stream = tls::negotiate(tcp, &params.host, &params.tls)?;
        let mut client = Client {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(COPY_FLUSH + 1024),
        };
        client.start_up(params)?;
        Ok(client)
    }

    fn start_up(&mut self, params: &ConnectParams) -> Result<(), WireError> {
        frontend::startup_message(
            [
                ("user", params.user.as_str()),
                ("database", params.database.as_str()),
                ("application_name", "weft"),
                ("client_encoding", "UTF8"),
                // Text output the connector parses: ISO dates in UTC, hex
                // bytea, floats that round-trip.
                ("DateStyle", "ISO, YMD"),
                ("TimeZone", "UTC"),
                ("IntervalStyle", "iso_8601"),
                ("extra_float_digits", "3"),
                ("bytea_output", "hex"),
            ],
            &mut self.wbuf,
        )?;
        self.flush()?;
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.read_message()? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(params.password.as_bytes(), &mut self.wbuf)?;
                    self.flush()?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = md5_hash(
                        params.user.as_bytes(),
                        params.password.as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut self.wbuf)?;
                    self.flush()?;
                }
                Message::AuthenticationSasl(body) => {
                    let mechanisms: Vec<String> = body
                        .mechanisms()
                        .map(|m| Ok(m.to_owned()))
                        .collect()
                        .map_err(WireError::Io)?;
                    if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                        return Err(WireError::UnsupportedAuth(format!(
                            "SASL mechanisms {mechanisms:?}"
                        )));
                    }
                    let s =
                        ScramSha256::new(params.password.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut self.wbuf)?;
                    self.flush()?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| WireError::Protocol("SASL continue before start".into()))?;
                    s.update(body.data())?;
                    frontend::sasl_response(s.message(), &mut self.wbuf)?;
                    self.flush()?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| WireError::Protocol("SASL final before start".into()))?;
                    s.finish(body.data())?;
                }
                Message::AuthenticationGss
                | Message::AuthenticationKerberosV5
                | Message::AuthenticationScmCredential
                | Message::AuthenticationSspi
                | Message::AuthenticationGssContinue(_) => {
                    return Err(WireError::UnsupportedAuth(
                        "GSS/Kerberos/SSPI; use a password role".into(),
                    ));
                }
                Message::ErrorResponse(body) => {
                    return Err(WireError::Server(server_error(&body)?));
                }
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ParameterStatus(_)
                | Message::BackendKeyData(_)
                | Message::NoticeResponse(_) => {}
                _ => {
                    return Err(WireError::Protocol(
                        "unexpected message during start-up".into(),
                    ));
                }
            }
        }
    }

    /// Runs `sql` (one or more statements) and returns the rows of its
    /// results, in order.
    pub fn query(&mut self, sql: &str) -> Result<Vec<TextRow>, WireError> {
        frontend::query(sql, &mut self.wbuf)?;
        self.flush()?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_message()? {
                Message::DataRow(body) => rows.push(text_row(&body)?),
                Message::ErrorResponse(body) => error = Some(server_error(&body)?),
                Message::ReadyForQuery(_) => break,
                // COPY is not for `query`: refuse it and let the server fail it.
                Message::CopyInResponse(_) => {
                    frontend::copy_fail("COPY is not expected here", &mut self.wbuf)?;
                    self.flush()?;
                }
                Message::CopyOutResponse(_) | Message::CopyData(_) | Message::CopyDone => {
                    error.get_or_insert(ServerError {
                        code: "XX000".into(),
                        message: "unexpected COPY output".into(),
                        detail: None,
                    });
                }
                _ => {}
            }
        }
        match error {
            Some(e) => Err(WireError::Server(e)),
            None => Ok(rows),
        }
    }

    /// Runs `sql` for its effect.
    pub fn execute(&mut self, sql: &str) -> Result<(), WireError> {
        self.query(sql).map(drop)
    }

    /// Starts `COPY … TO STDOUT`; read it with [`copy_out_next`](Self::copy_out_next).
    pub fn copy_out(&mut self, sql: &str) -> Result<(), WireError> {
        self.start_copy(sql, CopyDirection::Out)
    }

    /// The next row of a COPY output (one `CopyData` message is one row in
    /// text format), or `None` once the COPY ended.
    pub fn copy_out_next(&mut self) -> Result<Option<Bytes>, WireError> {
        loop {
            match self.read_message()? {
                Message::CopyData(body) => return Ok(Some(body.into_bytes())),
                Message::CopyDone => {}
                Message::CommandComplete(_) => {
                    self.until_ready()?;
                    return Ok(None);
                }
                Message::ErrorResponse(body) => {
                    let e = server_error(&body)?;
                    self.until_ready()?;
                    return Err(WireError::Server(e));
                }
                Message::NoticeResponse(_) | Message::ParameterStatus(_) => {}
                _ => {
                    return Err(WireError::Protocol(
                        "unexpected message in COPY output".into(),
                    ));
                }
            }
        }
    }

    /// Starts `COPY … FROM STDIN`; send with [`copy_in_write`](Self::copy_in_write)
    /// and end with [`copy_in_finish`](Self::copy_in_finish).
    pub fn copy_in(&mut self, sql: &str) -> Result<(), WireError> {
        self.start_copy(sql, CopyDirection::In)
    }

    /// Sends a COPY statement and waits until the server starts the COPY in
    /// `direction`; an error of the statement leaves the session ready.
    fn start_copy(&mut self, sql: &str, direction: CopyDirection) -> Result<(), WireError> {
        frontend::query(sql, &mut self.wbuf)?;
        self.flush()?;
        loop {
            match (self.read_message()?, direction) {
                (Message::CopyOutResponse(_), CopyDirection::Out)
                | (Message::CopyInResponse(_), CopyDirection::In) => return Ok(()),
                (Message::ErrorResponse(body), _) => {
                    let e = server_error(&body)?;
                    self.until_ready()?;
                    return Err(WireError::Server(e));
                }
                (Message::NoticeResponse(_) | Message::ParameterStatus(_), _) => {}
                (_, direction) => {
                    return Err(WireError::Protocol(format!(
                        "the server did not start COPY {}",
                        direction.noun()
                    )));
                }
            }
        }
    }

    /// Sends COPY input data (whole rows or not; the server reassembles).
    pub fn copy_in_write(&mut self, data: &[u8]) -> Result<(), WireError> {
        for chunk in data.chunks(COPY_FLUSH) {
            frontend::CopyData::new(chunk)?.write(&mut self.wbuf);
            if self.wbuf.len() >= COPY_FLUSH {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Ends COPY input; the server's verdict on all of it.
    pub fn copy_in_finish(&mut self) -> Result<(), WireError> {
        frontend::copy_done(&mut self.wbuf);
        self.flush()?;
        let mut error = None;
        loop {
            match self.read_message()? {
                Message::ErrorResponse(body) => error = Some(server_error(&body)?),
                Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(WireError::Server(e)),
            None => Ok(()),
        }
    }

    /// Ends the session politely; errors do not matter any more.
    pub fn close(mut self) {
        frontend::terminate(&mut self.wbuf);
        let _ = self.flush();
    }

    fn until_ready(&mut self) -> Result<(), WireError> {
        loop {
            if let Message::ReadyForQuery(_) = self.read_message()? {
                return Ok(());
            }
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    fn flush(&mut self) -> Result<(), WireError> {
        self.stream.write_all(&self.wbuf)?;
        self.stream.flush()?;
        self.wbuf.clear();
        Ok(())
    }

    fn read_message(&mut self) -> Result<Message, WireError> {
        loop {
            if let Some(header) = Header::parse(&self.rbuf)? {
                let len = usize::try_from(header.len()).unwrap_or(usize::MAX);
                if len > MAX_MESSAGE {
                    return Err(WireError::Protocol(format!(
                        "the server sent a message of {len} bytes (at most {MAX_MESSAGE} are accepted)"
                    )));
                }
                if let Some(message) = Message::parse(&mut self.rbuf)? {
                    return Ok(message);
                }
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<(), WireError> {
        let start = self.rbuf.len();
        self.rbuf.resize(start + READ_CHUNK, 0);
        let n = loop {
            match self.stream.read(&mut self.rbuf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.rbuf.truncate(start);
                    return Err(e.into());
                }
            }
        };
        self.rbuf.truncate(start + n);
        if n == 0 {
            return Err(WireError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        Ok(())
    }
}

fn server_error(
    body: &postgres_protocol::message::backend::ErrorResponseBody,
) -> Result<ServerError, WireError> {
    let mut e = ServerError {
        code: String::new(),
        message: String::new(),
        detail: None,
    };
    let mut fields = body.fields();
    while let Some(f) = fields.next()? {
        match f.type_() {
            b'C' => e.code = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'M' => e.message = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'D' => e.detail = Some(String::from_utf8_lossy(f.value_bytes()).into_owned()),
            _ => {}
        }
    }
    Ok(e)
}

fn text_row(body: &postgres_protocol::message::backend::DataRowBody) -> Result<TextRow, WireError> {
    let buf = body.buffer();
    let mut out = Vec::new();
    let mut ranges = body.ranges();
    while let Some(range) = ranges.next()? {
        out.push(match range {
            None => None,
            Some(r) => Some(
                std::str::from_utf8(&buf[r])
                    .map_err(|_| WireError::Protocol("a text value is not UTF-8".into()))?
                    .to_owned(),
            ),
        });
    }
    Ok(out)
}

/// Which way a COPY moves data, seen from the client.
#[derive(Clone, Copy)]
enum CopyDirection {
    /// `COPY … TO STDOUT`.
    Out,
    /// `COPY … FROM STDIN`.
    In,
}

impl CopyDirection {
    /// The data this direction moves, as messages name it.
    fn noun(self) -> &'static str {
        match self {
            Self::Out => "output",
            Self::In => "input",
        }
    }
}

//! Bearer-token authentication. The bootstrap admin token comes from
//! `WEFT_ADMIN_TOKEN`; when unset, the first start generates one, prints
//! it once and stores only its sha256. Users, roles and tenants plug in
//! here later: the checker yields the [`Principal`] every engine service takes.

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::OnceLock;
use weft_model::Principal;

static ADMIN_TOKEN_SHA256: OnceLock<[u8; 32]> = OnceLock::new();

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Sets up the admin token; returns a freshly generated token to print once.
pub fn init_admin_token(data_dir: &Path) -> anyhow::Result<Option<String>> {
    let file = data_dir.join("admin-token.sha256");
    let (hash, generated) = match std::env::var("WEFT_ADMIN_TOKEN") {
        Ok(t) if !t.is_empty() => (sha256(&t), None),
        _ => match std::fs::read_to_string(&file) {
            Ok(hex_hash) => {
                let bytes = hex::decode(hex_hash.trim())?;
                let hash: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("{} is corrupt", file.display()))?;
                (hash, None)
            }
            Err(_) => {
                let token = format!("weft_{}", hex::encode(rand::random::<[u8; 24]>()));
                let hash = sha256(&token);
                std::fs::create_dir_all(data_dir)?;
                std::fs::write(&file, hex::encode(hash))?;
                (hash, Some(token))
            }
        },
    };
    let _ = ADMIN_TOKEN_SHA256.set(hash);
    Ok(generated)
}

/// `Authorization: Bearer <token>` on every `/api/v1` endpoint.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_bearer")]
pub struct BearerAuth(pub Principal);

async fn check_bearer(_req: &Request, bearer: Bearer) -> Option<Principal> {
    principal_for(&bearer.token)
}

/// Who a bearer token belongs to, if anyone.
fn principal_for(token: &str) -> Option<Principal> {
    let expected = ADMIN_TOKEN_SHA256.get()?;
    // Compare hashes so the comparison time does not depend on the token.
    (sha256(token) == *expected).then(|| Principal::bootstrap_admin().clone())
}

/// The WebSocket subprotocol a stream speaks; the server selects it.
pub const WS_PROTOCOL: &str = "weft.v1";

/// Prefix of the subprotocol entry that carries a token.
pub const WS_TOKEN_PREFIX: &str = "weft.bearer.";

/// The bearer token sent as a WebSocket subprotocol, for browsers: their
/// `WebSocket` API cannot set `Authorization`, and a `?token=` query
/// parameter would end up in proxy and access logs. Offer
/// `["weft.v1", "weft.bearer.<token>"]`; the server answers `weft.v1`.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "Sec-WebSocket-Protocol",
    key_in = "header",
    checker = "check_ws_protocol"
)]
pub struct WsProtocolAuth(pub Principal);

async fn check_ws_protocol(_req: &Request, key: ApiKey) -> Option<Principal> {
    key.key
        .split(',')
        .find_map(|p| p.trim().strip_prefix(WS_TOKEN_PREFIX))
        .and_then(principal_for)
}

/// Authentication of the WebSocket stream: the bearer header, or the
/// token as a subprotocol (browsers).
#[derive(SecurityScheme)]
pub enum StreamAuth {
    /// `Authorization: Bearer <token>`.
    Bearer(BearerAuth),
    /// `Sec-WebSocket-Protocol: weft.v1, weft.bearer.<token>`.
    Protocol(WsProtocolAuth),
}

impl StreamAuth {
    /// Who is calling, whichever way they authenticated.
    pub fn principal(&self) -> &Principal {
        match self {
            Self::Bearer(b) => &b.0,
            Self::Protocol(p) => &p.0,
        }
    }
}

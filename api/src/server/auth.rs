//! Bearer-token authentication. The bootstrap admin token comes from
//! `WEFT_ADMIN_TOKEN`; when unset, the first start generates one, prints
//! it once and stores only its sha256. Users, roles and tenants plug in
//! here later: the checker already yields a [`Principal`].

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::OnceLock;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Display name for audit and events.
    pub name: String,
}

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
    let expected = ADMIN_TOKEN_SHA256.get()?;
    // Compare hashes so the comparison time does not depend on the token.
    (sha256(&bearer.token) == *expected).then(|| Principal {
        name: "admin".into(),
    })
}

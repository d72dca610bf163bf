//! Sealing connection secrets at rest with AES-256-GCM.
//!
//! Each value gets a fresh random nonce, and the associated data names the
//! connection and field it belongs to, so a sealed value moved to another
//! connection or field fails to open instead of leaking there. The key id
//! stored beside each value (a fingerprint of the key) tells a wrong key
//! apart from tampering.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use weft_model::SealedSecret;

/// The key that seals connection secrets. Its bytes never leave this type
/// except through [`SecretKey::to_base64`] (for writing the key file).
#[derive(Clone)]
pub struct SecretKey {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

/// Why a key or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretBoxError {
    /// The key text is not 32 bytes of base64.
    #[error("a secret key is 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)")]
    BadKey,
    /// The value was sealed with another key.
    #[error("sealed with key {sealed_with}, but the server's key is {current}")]
    WrongKey {
        /// The key id stored with the value.
        sealed_with: String,
        /// This server's key id.
        current: String,
    },
    /// The value does not open: tampered with, or moved from elsewhere.
    #[error("a sealed secret does not open (tampered with, or copied from another field)")]
    Corrupt,
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self::from_bytes(Aes256Gcm::generate_key(&mut OsRng).into())
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(key);
        let id = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Self { key, id }
    }

    /// A key from base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SecretBoxError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| SecretBoxError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretBoxError::BadKey)?;
        Ok(Self::from_bytes(key))
    }

    /// The key as base64 text.
    pub fn to_base64(&self) -> String {
        B64.encode(self.key)
    }

    /// The key's fingerprint, stored beside what it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key))
    }

    /// Seals `plaintext`, bound to `context` (connection id and field).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> SealedSecret {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // Encryption only fails for inputs past GCM's size limit (64 GiB).
        let ciphertext = self.cipher().encrypt(&nonce, payload).unwrap_or_default();
        SealedSecret {
            key_id: self.id.clone(),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
        }
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, context: &str, sealed: &SealedSecret) -> Result<Vec<u8>, SecretBoxError> {
        if sealed.key_id != self.id {
            return Err(SecretBoxError::WrongKey {
                sealed_with: sealed.key_id.clone(),
                current: self.id.clone(),
            });
        }
        let nonce = B64
            .decode(&sealed.nonce)
            .map_err(|_| SecretBoxError::Corrupt)?;
        if nonce.len() != 12 {
            return Err(SecretBoxError::Corrupt);
        }
        let ciphertext = B64
            .decode(&sealed.ciphertext)
            .map_err(|_| SecretBoxError::Corrupt)?;
        let payload = Payload {
            msg: &ciphertext,
            aad: context.as_bytes(),
        };
        self.cipher()
            .decrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| SecretBoxError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = SecretKey::generate();
        let sealed = key.seal("c1/password", b"hunter2");
        assert_ne!(sealed.ciphertext, B64.encode(b"hunter2"));
        assert_eq!(key.open("c1/password", &sealed).unwrap(), b"hunter2");
        assert_eq!(
            key.open("c2/password", &sealed),
            Err(SecretBoxError::Corrupt)
        );
        let other = SecretKey::generate();
        assert!(matches!(
            other.open("c1/password", &sealed),
            Err(SecretBoxError::WrongKey { .. })
        ));
        let mut tampered = sealed.clone();
        tampered.ciphertext = B64.encode(b"not the ciphertext at all");
        assert_eq!(
            key.open("c1/password", &tampered),
            Err(SecretBoxError::Corrupt)
        );
        let again = key.seal("c1/password", b"hunter2");
        assert_ne!(again.nonce, sealed.nonce, "every seal has a fresh nonce");
    }

    #[test]
    fn keys_round_trip_through_base64_and_bad_ones_are_refused() {
        let key = SecretKey::generate();
        let back = SecretKey::from_base64(&format!(" {}\n", key.to_base64())).unwrap();
        assert_eq!(back.id(), key.id());
        assert_eq!(
            SecretKey::from_base64("c2hvcnQ=").unwrap_err(),
            SecretBoxError::BadKey
        );
        assert_eq!(format!("{key:?}"), format!("SecretKey({})", key.id()));
    }
}

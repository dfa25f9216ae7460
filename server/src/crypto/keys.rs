//! The key hierarchy above the data keys: the deployment's master key, the per-tenant
//! key-encryption key derived from it (HKDF-SHA256), and the wrapping of each file's data key
//! (AES-256-GCM bound to the file id). Deleting a wrapped key makes its file unreadable at once.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::CryptoError;
use super::segment::{Dek, NONCE_LEN, TAG_LEN};

const KEK_SALT: &[u8] = b"ferry/v1/kek";
const AUDIT_SALT: &[u8] = b"ferry/v1/audit";
const CHECK_SALT: &[u8] = b"ferry/v1/key-check";
const WRAP_DOMAIN: &[u8; 12] = b"ferry/v1/dek";
const KEY_LEN: usize = 32;
const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// The deployment's root secret (32 bytes). Debug prints "MasterKey(..)".
///
/// Zeroized on drop. Every tenant key derives from it, so losing it loses every file.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Output length for HKDF expansion into raw bytes.
struct Len32;

impl KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

impl MasterKey {
    /// Draws a new master key (for `ferry keygen`-style setup and tests).
    ///
    /// Fails with [`CryptoError::Random`] if the system generator fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(MasterKey(key))
    }

    /// Reads the key from standard base64 (padded) as found in the environment or a key file;
    /// surrounding whitespace (a trailing newline) is ignored.
    ///
    /// Fails with [`CryptoError::BadKey`] if the text is not base64 or not 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, CryptoError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(s.trim())
                .map_err(|_| CryptoError::BadKey("master key is not valid base64"))?,
        );
        let bytes: [u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadKey("master key must be 32 bytes"))?;
        Ok(MasterKey(Zeroizing::new(bytes)))
    }

    /// The key as standard base64, for writing a freshly generated key once. Cannot fail.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_ref())
    }

    /// The tenant's key-encryption key bytes: HKDF-SHA256, salt `b"ferry/v1/kek"`,
    /// info = the tenant id's 16 bytes, 32 bytes of output.
    fn kek_bytes(&self, tenant_id: Uuid) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
        self.derive(KEK_SALT, tenant_id)
    }

    /// HKDF-SHA256 of the master key with `salt`, info = the tenant id's 16 bytes.
    fn derive(
        &self,
        salt: &[u8],
        tenant_id: Uuid,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
        let prk = Salt::new(HKDF_SHA256, salt).extract(self.0.as_ref());
        let info = [tenant_id.as_bytes().as_slice()];
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        prk.expand(&info, Len32)
            .and_then(|okm| okm.fill(out.as_mut()))
            .map_err(|_| CryptoError::BadKey("HKDF expansion failed"))?;
        Ok(out)
    }

    /// Derives the key that wraps the data keys of tenant `tenant_id`
    /// (HKDF-SHA256, salt `b"ferry/v1/kek"`, info = the tenant id's 16 bytes).
    ///
    /// Deterministic: the same master key and tenant always give the same key, so nothing
    /// per tenant needs storing. Fails with [`CryptoError::BadKey`] only if the crypto library
    /// refuses the derivation.
    pub fn tenant_kek(&self, tenant_id: Uuid) -> Result<TenantKek, CryptoError> {
        let bytes = self.kek_bytes(tenant_id)?;
        let key = UnboundKey::new(&AES_256_GCM, bytes.as_ref())
            .map_err(|_| CryptoError::BadKey("AES-256-GCM refused the tenant key"))?;
        Ok(TenantKek {
            key: LessSafeKey::new(key),
        })
    }
}

/// The key of a tenant's audit chain: each event's hash is a keyed BLAKE3 under it, so someone
/// who can write the database but does not hold the master key cannot rebuild a chain they
/// altered. Derived like the KEK with its own salt (`b"ferry/v1/audit"`). Debug hides it.
pub struct AuditKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// A keyed BLAKE3 hasher to feed one event's canonical bytes into.
    pub fn hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.0)
    }
}

impl MasterKey {
    /// A key check value: 32 bytes derived from the key (HKDF-SHA256, salt
    /// `b"ferry/v1/key-check"`, info = the nil UUID) that say nothing about it but differ for
    /// every other key. Stored in the database, it lets a server notice it was started with a
    /// master key other than the one the database's keys are wrapped under.
    pub fn check_value(&self) -> Result<Vec<u8>, CryptoError> {
        Ok(self.derive(CHECK_SALT, Uuid::nil())?.to_vec())
    }

    /// Derives the key of tenant `tenant_id`'s audit chain. Deterministic, like the KEK.
    pub fn audit_key(&self, tenant_id: Uuid) -> Result<AuditKey, CryptoError> {
        self.derive(AUDIT_SALT, tenant_id).map(AuditKey)
    }
}

/// A tenant's key-encryption key: wraps and unwraps the data keys of that tenant's files.
///
/// `Send + Sync`; derive it once per request or cache it.
pub struct TenantKek {
    key: LessSafeKey,
}

impl std::fmt::Debug for TenantKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantKek(..)")
    }
}

fn wrap_aad(file_id: Uuid) -> [u8; WRAP_DOMAIN.len() + 16] {
    let mut aad = [0u8; WRAP_DOMAIN.len() + 16];
    let (domain, id) = aad.split_at_mut(WRAP_DOMAIN.len());
    domain.copy_from_slice(WRAP_DOMAIN);
    id.copy_from_slice(file_id.as_bytes());
    aad
}

impl TenantKek {
    /// Wraps `dek` for storage in the row of file `file_id`:
    /// nonce(12, random) ‖ AES-256-GCM(dek) ‖ tag, AAD = `b"ferry/v1/dek"` ‖ file id bytes.
    /// 60 bytes.
    ///
    /// Fails with [`CryptoError::Random`] if no nonce could be drawn.
    pub fn wrap(&self, dek: &Dek, file_id: Uuid) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut sealed = Zeroizing::new(*dek.as_bytes());
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(file_id)),
                sealed.as_mut(),
            )
            .map_err(|_| CryptoError::BadKey("AES-256-GCM refused to wrap the data key"))?;
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(sealed.as_ref());
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Recovers the data key of file `file_id` from its wrapped form.
    ///
    /// Fails with [`CryptoError::Malformed`] unless `wrapped` is 60 bytes, and with
    /// [`CryptoError::Authentication`] if it was tampered with, belongs to another file, or was
    /// wrapped by another tenant's (or master) key.
    pub fn unwrap(&self, wrapped: &[u8], file_id: Uuid) -> Result<Dek, CryptoError> {
        let mut buf: Zeroizing<[u8; WRAPPED_LEN]> = Zeroizing::new(
            wrapped
                .try_into()
                .map_err(|_| CryptoError::Malformed("a wrapped data key must be 60 bytes"))?,
        );
        let (nonce, sealed) = buf.split_at_mut(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Authentication)?;
        let dek = self
            .key
            .open_in_place(nonce, Aad::from(wrap_aad(file_id)), sealed)
            .map_err(|_| CryptoError::Authentication)?;
        Dek::from_bytes(dek)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aes_gcm::aead::{Aead, KeyInit, Payload};

    fn fixed_master() -> MasterKey {
        MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap()
    }

    #[test]
    fn kek_derivation_matches_independent_hkdf() {
        // Computed with Python's hmac/hashlib (RFC 5869 by hand).
        let tenant = Uuid::parse_str("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
        let kek = fixed_master().kek_bytes(tenant).unwrap();
        assert_eq!(
            hex::encode(kek.as_ref()),
            "6e57ce8c30f5ce04c7b8df1ea7273ea94433857cf8dd5a9d3b76b37340a69d30"
        );
    }

    #[test]
    fn wrap_round_trip_and_format() {
        let master = MasterKey::generate().unwrap();
        let tenant = Uuid::new_v4();
        let file = Uuid::new_v4();
        let dek = Dek::generate().unwrap();
        let kek = master.tenant_kek(tenant).unwrap();
        let wrapped = kek.wrap(&dek, file).unwrap();
        assert_eq!(wrapped.len(), 60);
        assert_eq!(
            kek.unwrap(&wrapped, file).unwrap().as_bytes(),
            dek.as_bytes()
        );
        // Two wraps of the same key differ (random nonce).
        assert_ne!(kek.wrap(&dek, file).unwrap(), wrapped);

        // An independent implementation opens it with the documented AAD.
        let kek_bytes = master.kek_bytes(tenant).unwrap();
        let gcm = aes_gcm::Aes256Gcm::new_from_slice(kek_bytes.as_ref()).unwrap();
        let mut aad = b"ferry/v1/dek".to_vec();
        aad.extend_from_slice(file.as_bytes());
        let plain = gcm
            .decrypt(
                aes_gcm::Nonce::from_slice(&wrapped[..12]),
                Payload {
                    msg: &wrapped[12..],
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(plain.as_slice(), dek.as_bytes());
    }

    #[test]
    fn unwrap_refuses_wrong_context() {
        let master = MasterKey::generate().unwrap();
        let (tenant, other_tenant) = (Uuid::new_v4(), Uuid::new_v4());
        let file = Uuid::new_v4();
        let kek = master.tenant_kek(tenant).unwrap();
        let wrapped = kek.wrap(&Dek::generate().unwrap(), file).unwrap();

        let other = master.tenant_kek(other_tenant).unwrap();
        assert!(matches!(
            other.unwrap(&wrapped, file),
            Err(CryptoError::Authentication)
        ));
        let other_master = MasterKey::generate().unwrap().tenant_kek(tenant).unwrap();
        assert!(matches!(
            other_master.unwrap(&wrapped, file),
            Err(CryptoError::Authentication)
        ));
        assert!(matches!(
            kek.unwrap(&wrapped, Uuid::new_v4()),
            Err(CryptoError::Authentication)
        ));
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x01;
            assert!(matches!(
                kek.unwrap(&bad, file),
                Err(CryptoError::Authentication)
            ));
        }
        assert!(matches!(
            kek.unwrap(&wrapped[..59], file),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            kek.unwrap(&[], file),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn distinct_tenants_get_distinct_keks() {
        let master = fixed_master();
        let a = master.kek_bytes(Uuid::from_u128(1)).unwrap();
        let b = master.kek_bytes(Uuid::from_u128(2)).unwrap();
        assert_ne!(a.as_ref(), b.as_ref());
        assert_eq!(
            master.kek_bytes(Uuid::from_u128(1)).unwrap().as_ref(),
            a.as_ref()
        );
        let other = MasterKey::generate()
            .unwrap()
            .kek_bytes(Uuid::from_u128(1))
            .unwrap();
        assert_ne!(a.as_ref(), other.as_ref());
    }

    #[test]
    fn master_key_encoding() {
        let master = MasterKey::generate().unwrap();
        let text = master.to_base64();
        assert_eq!(
            MasterKey::from_base64(&text).unwrap().0.as_ref(),
            master.0.as_ref()
        );
        let debug = format!("{master:?} {:?}", master.tenant_kek(Uuid::nil()).unwrap());
        assert_eq!(debug, "MasterKey(..) TenantKek(..)");
        assert!(!debug.contains(&text));
        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(CryptoError::BadKey(_))
        ));
        assert!(matches!(
            MasterKey::from_base64("AAAA"),
            Err(CryptoError::BadKey(_))
        ));
        assert!(matches!(
            MasterKey::from_base64(""),
            Err(CryptoError::BadKey(_))
        ));
        assert_eq!(format!("{:?}", Dek::generate().unwrap()), "Dek(..)");
    }
}

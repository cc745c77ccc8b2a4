//! Message encryption for Web Push: RFC 8291 ("Message Encryption for Web Push") on top of
//! RFC 8188's `aes128gcm` content coding.
//!
//! Who does what:
//! - the **record layer** of RFC 8188 (the `salt | rs | idlen | keyid` header of §2.1, the
//!   content-encryption key and nonce derived with HKDF in §2.2–2.3, the padding delimiter and the
//!   AEAD_AES_128_GCM records) is the kept crate `ece-native`, pure Rust on RustCrypto's
//!   `aes-gcm`, `hkdf` and `sha2`;
//! - this module adds only what RFC 8291 puts in front of it (§3.3–3.4): an ephemeral ECDH on
//!   P-256 between the application server and the user agent's `p256dh` key, combined with the
//!   subscription's 16-byte `auth` secret into the input keying material
//!   `IKM = HKDF-SHA-256(salt = auth, ikm = ecdh_secret, info = "WebPush: info" 0x00 ua_public
//!   as_public, L = 32)`, and the rules of §4 (the `keyid` is the application server's
//!   uncompressed public key, a push message is a single record).
//!
//! [`decrypt`] is the user agent's side of the same steps. The server never needs it; the test
//! push service (feature `test-support`) uses it to read what arrives exactly as a browser would.
//!
//! Sizes: RFC 8030 §7.2 only obliges a push service to accept 4096 bytes of body. With the
//! 86-byte header (16 salt + 4 rs + 1 idlen + 65 keyid), the 1-byte padding delimiter and the
//! 16-byte tag, that leaves [`MAX_PLAINTEXT`] = 3993 bytes of plaintext (RFC 8291 §4); larger
//! payloads are refused with [`EncryptError::TooLarge`] rather than sent to be dropped.

use base64::Engine as _;
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;

use crate::b64;

/// The record size written in the header: the 4096-byte body every push service must accept
/// (RFC 8030 §7.2), which is also what browsers' own senders and RFC 8291's example use.
pub const RECORD_SIZE: u32 = 4096;

/// Length of the `aes128gcm` header with a P-256 `keyid`: salt (16), rs (4), idlen (1), the
/// uncompressed public key (65).
pub const HEADER_LEN: usize = 16 + 4 + 1 + UNCOMPRESSED_POINT_LEN;

/// AEAD_AES_128_GCM's tag.
const TAG_LEN: usize = 16;

/// An uncompressed SEC1 P-256 point: `0x04 | x | y`.
pub const UNCOMPRESSED_POINT_LEN: usize = 65;

/// Largest plaintext that fits the 4096-byte body in one record: 4096 − 86 − 16 − 1 = 3993
/// (RFC 8291 §4).
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - HEADER_LEN - TAG_LEN - 1;

/// Largest body a push service is obliged to accept (RFC 8030 §7.2).
pub const MAX_BODY: usize = RECORD_SIZE as usize;

/// A subscription's authentication secret (`keys.auth`, RFC 8291 §3.2): 16 random bytes the user
/// agent generated. Secret: it authenticates the messages, so `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthSecret([u8; 16]);

impl AuthSecret {
    /// Wraps the 16 bytes.
    pub fn new(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// A fresh random secret, as a user agent makes one (the test push service does).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses the base64url text of `keys.auth`; it must decode to exactly 16 bytes.
    pub fn from_base64url(text: &str) -> Result<Self, KeyFormatError> {
        let bytes = b64::decode(text).map_err(|_| KeyFormatError::NotBase64Url)?;
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyFormatError::Length {
                expected: 16,
                actual: b.len(),
            })?;
        Ok(Self(bytes))
    }

    /// The base64url text (no padding), as browsers write it.
    pub fn to_base64url(&self) -> String {
        b64::URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Debug for AuthSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthSecret(<redacted>)")
    }
}

/// Parses an uncompressed P-256 public key written as base64url (`keys.p256dh`, a VAPID `k=`):
/// 65 bytes, `0x04 | x | y`, and a point on the curve.
pub fn public_key_from_base64url(text: &str) -> Result<PublicKey, KeyFormatError> {
    let bytes = b64::decode(text).map_err(|_| KeyFormatError::NotBase64Url)?;
    if bytes.len() != UNCOMPRESSED_POINT_LEN {
        return Err(KeyFormatError::Length {
            expected: UNCOMPRESSED_POINT_LEN,
            actual: bytes.len(),
        });
    }
    // RFC 8291 §3.1 and RFC 8292 §3.2 both want the uncompressed form (a 0x04 prefix).
    if bytes[0] != 0x04 {
        return Err(KeyFormatError::NotUncompressed);
    }
    PublicKey::from_sec1_bytes(&bytes).map_err(|_| KeyFormatError::NotOnCurve)
}

/// The uncompressed SEC1 bytes of a public key, base64url without padding.
pub fn public_key_to_base64url(key: &PublicKey) -> String {
    b64::URL_SAFE_NO_PAD.encode(key.to_encoded_point(false).as_bytes())
}

/// A key or secret that is not what RFC 8291 / RFC 8292 say it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("not base64url")]
    NotBase64Url,
    #[error("must be {expected} bytes, got {actual}")]
    Length { expected: usize, actual: usize },
    #[error("not an uncompressed point (0x04 | x | y)")]
    NotUncompressed,
    #[error("not a point on the P-256 curve")]
    NotOnCurve,
    #[error("not a valid P-256 private key")]
    InvalidPrivateKey,
}

/// Why a payload could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    /// Over [`MAX_PLAINTEXT`]: the body would pass the 4096 bytes push services must accept.
    #[error("payload is {size} bytes; Web Push carries at most {max} (RFC 8291 §4)")]
    TooLarge { size: usize, max: usize },
    /// The record layer refused (cannot happen for sizes within the limit; kept typed, not a panic).
    #[error("aes128gcm encryption failed: {0}")]
    Record(String),
}

/// Why a body could not be decrypted (the user agent's side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("body shorter than the aes128gcm header")]
    TooShort,
    #[error("record size {0} is below RFC 8188's minimum of 18")]
    RecordSize(u32),
    #[error("keyid is {0} bytes; RFC 8291 §4 wants the 65-byte uncompressed public key")]
    KeyId(usize),
    #[error("keyid is not a P-256 point")]
    SenderKey,
    #[error("more than one record; RFC 8291 §4 allows one")]
    MultipleRecords,
    #[error("authentication or padding check failed: {0}")]
    Record(String),
}

/// Encrypts `plaintext` for the user agent holding `ua_public` and `auth` (RFC 8291 §3.4): a fresh
/// ephemeral key pair and a fresh 16-byte salt per message, one record of at most [`RECORD_SIZE`].
pub fn encrypt(
    plaintext: &[u8],
    ua_public: &PublicKey,
    auth: &AuthSecret,
) -> Result<Vec<u8>, EncryptError> {
    // Checked before drawing randomness, so the common refusal costs nothing.
    check_size(plaintext)?;
    let as_secret = SecretKey::random(&mut OsRng);
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    encrypt_with(plaintext, ua_public, auth, &as_secret, salt)
}

fn check_size(plaintext: &[u8]) -> Result<(), EncryptError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EncryptError::TooLarge {
            size: plaintext.len(),
            max: MAX_PLAINTEXT,
        });
    }
    Ok(())
}

/// [`encrypt`] with the application server's ephemeral key and the salt given: deterministic, so
/// the RFC 8291 Appendix A example can be reproduced byte for byte. Never reuse either in
/// production.
pub(crate) fn encrypt_with(
    plaintext: &[u8],
    ua_public: &PublicKey,
    auth: &AuthSecret,
    as_secret: &SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, EncryptError> {
    check_size(plaintext)?;
    let as_public = as_secret.public_key();
    // RFC 8291 §3.1: ecdh_secret = ECDH(as_private, ua_public).
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_public.as_affine());
    let ikm = web_push_ikm(auth, shared.raw_secret_bytes(), ua_public, &as_public);
    // RFC 8291 §4: the keyid is the application server's public key, uncompressed.
    let keyid = as_public.to_encoded_point(false);
    ece_native::encrypt(
        ikm,
        salt,
        keyid.as_bytes(),
        std::iter::once(plaintext.to_vec()),
        RECORD_SIZE,
    )
    .map_err(|e| EncryptError::Record(e.to_string()))
}

/// Decrypts a push message body as the user agent does (RFC 8291 §3.4, the receiving side):
/// reads the sender's public key from the header's `keyid`, repeats the ECDH with `ua_secret`,
/// derives the same IKM and opens the single record.
pub fn decrypt(
    body: &[u8],
    ua_secret: &SecretKey,
    auth: &AuthSecret,
) -> Result<Vec<u8>, DecryptError> {
    if body.len() < 21 {
        return Err(DecryptError::TooShort);
    }
    let rs = u32::from_be_bytes([body[16], body[17], body[18], body[19]]);
    // RFC 8188 §2.1: "rs ... MUST NOT be less than 18"; ece-native would divide by a zero rs.
    if rs < 18 {
        return Err(DecryptError::RecordSize(rs));
    }
    let idlen = usize::from(body[20]);
    if idlen != UNCOMPRESSED_POINT_LEN {
        return Err(DecryptError::KeyId(idlen));
    }
    if body.len() < 21 + idlen + TAG_LEN + 1 {
        return Err(DecryptError::TooShort);
    }
    if body.len() - (21 + idlen) > rs as usize {
        return Err(DecryptError::MultipleRecords);
    }
    let as_public =
        PublicKey::from_sec1_bytes(&body[21..21 + idlen]).map_err(|_| DecryptError::SenderKey)?;
    let ua_public = ua_secret.public_key();
    let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
    let ikm = web_push_ikm(auth, shared.raw_secret_bytes(), &ua_public, &as_public);
    ece_native::decrypt(ikm, body.to_vec()).map_err(|e| DecryptError::Record(e.to_string()))
}

/// RFC 8291 §3.3–3.4: combines the ECDH secret with the authentication secret.
///
/// ```text
/// key_info = "WebPush: info" || 0x00 || ua_public || as_public
/// IKM      = HKDF-SHA-256(salt = auth_secret, IKM = ecdh_secret, info = key_info, L = 32)
/// ```
///
/// (RFC 8291 writes it as a PRK_key extract followed by one expand; `Hkdf::new` + `expand` is
/// exactly that.) The result is the IKM of RFC 8188's own key and nonce derivation.
fn web_push_ikm(
    auth: &AuthSecret,
    ecdh_secret: &[u8],
    ua_public: &PublicKey,
    as_public: &PublicKey,
) -> [u8; 32] {
    let mut info = Vec::with_capacity(14 + 2 * UNCOMPRESSED_POINT_LEN);
    info.extend_from_slice(b"WebPush: info\0");
    info.extend_from_slice(ua_public.to_encoded_point(false).as_bytes());
    info.extend_from_slice(as_public.to_encoded_point(false).as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth.as_bytes()), ecdh_secret)
        .expand(&info, &mut ikm)
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    ikm
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8291 Appendix A, every value as the RFC prints it.
    mod rfc8291_appendix_a {
        pub const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
        pub const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
        pub const AS_PUBLIC: &str = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
        pub const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
        pub const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        pub const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
        pub const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
        pub const ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
        pub const IKM: &str = "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg";
        pub const MESSAGE: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
    }
    use rfc8291_appendix_a as rfc;

    fn secret(text: &str) -> SecretKey {
        SecretKey::from_slice(&b64::decode(text).unwrap()).unwrap()
    }

    #[test]
    fn the_rfc_8291_example_keys_and_intermediate_values_match() {
        let as_secret = secret(rfc::AS_PRIVATE);
        let ua_secret = secret(rfc::UA_PRIVATE);
        assert_eq!(
            public_key_to_base64url(&as_secret.public_key()),
            rfc::AS_PUBLIC
        );
        assert_eq!(
            public_key_to_base64url(&ua_secret.public_key()),
            rfc::UA_PUBLIC
        );

        let ua_public = public_key_from_base64url(rfc::UA_PUBLIC).unwrap();
        let shared =
            p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_public.as_affine());
        assert_eq!(
            b64::URL_SAFE_NO_PAD.encode(shared.raw_secret_bytes()),
            rfc::ECDH_SECRET
        );
        let auth = AuthSecret::from_base64url(rfc::AUTH).unwrap();
        let ikm = web_push_ikm(
            &auth,
            shared.raw_secret_bytes(),
            &ua_public,
            &as_secret.public_key(),
        );
        assert_eq!(b64::URL_SAFE_NO_PAD.encode(ikm), rfc::IKM);
    }

    #[test]
    fn encrypting_the_rfc_8291_example_gives_its_message_byte_for_byte() {
        let ua_public = public_key_from_base64url(rfc::UA_PUBLIC).unwrap();
        let auth = AuthSecret::from_base64url(rfc::AUTH).unwrap();
        let salt: [u8; 16] = b64::decode(rfc::SALT).unwrap().try_into().unwrap();
        let body = encrypt_with(
            rfc::PLAINTEXT,
            &ua_public,
            &auth,
            &secret(rfc::AS_PRIVATE),
            salt,
        )
        .unwrap();
        assert_eq!(b64::URL_SAFE_NO_PAD.encode(&body), rfc::MESSAGE);
    }

    #[test]
    fn decrypting_the_rfc_8291_message_as_the_user_agent_gives_its_plaintext() {
        let body = b64::decode(rfc::MESSAGE).unwrap();
        let auth = AuthSecret::from_base64url(rfc::AUTH).unwrap();
        let plaintext = decrypt(&body, &secret(rfc::UA_PRIVATE), &auth).unwrap();
        assert_eq!(plaintext, rfc::PLAINTEXT);
    }

    #[test]
    fn a_wrong_auth_secret_or_key_fails_authentication() {
        let body = b64::decode(rfc::MESSAGE).unwrap();
        let other_auth = AuthSecret::generate();
        assert!(matches!(
            decrypt(&body, &secret(rfc::UA_PRIVATE), &other_auth),
            Err(DecryptError::Record(_))
        ));
        let auth = AuthSecret::from_base64url(rfc::AUTH).unwrap();
        let other_key = SecretKey::random(&mut OsRng);
        assert!(matches!(
            decrypt(&body, &other_key, &auth),
            Err(DecryptError::Record(_))
        ));
        // One flipped ciphertext bit is caught by the tag.
        let mut tampered = body.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(decrypt(&tampered, &secret(rfc::UA_PRIVATE), &auth).is_err());
    }

    #[test]
    fn round_trip_with_fresh_keys_at_the_size_limit() {
        let ua_secret = SecretKey::random(&mut OsRng);
        let auth = AuthSecret::generate();
        let plaintext = vec![b'x'; MAX_PLAINTEXT];
        let body = encrypt(&plaintext, &ua_secret.public_key(), &auth).unwrap();
        // Exactly the 4096 bytes every push service must take.
        assert_eq!(body.len(), MAX_BODY);
        assert_eq!(decrypt(&body, &ua_secret, &auth).unwrap(), plaintext);
        // Fresh salt and ephemeral key each time: the same plaintext never encrypts the same.
        let again = encrypt(&plaintext, &ua_secret.public_key(), &auth).unwrap();
        assert_ne!(body, again);
    }

    #[test]
    fn one_byte_over_the_limit_is_refused_with_a_typed_error() {
        let ua_public = SecretKey::random(&mut OsRng).public_key();
        let err = encrypt(
            &vec![0u8; MAX_PLAINTEXT + 1],
            &ua_public,
            &AuthSecret::generate(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            EncryptError::TooLarge {
                size: 3994,
                max: 3993
            }
        );
    }

    #[test]
    fn malformed_headers_are_refused_before_any_crypto() {
        let ua = SecretKey::random(&mut OsRng);
        let auth = AuthSecret::generate();
        assert_eq!(decrypt(&[0u8; 10], &ua, &auth), Err(DecryptError::TooShort));
        let mut body = b64::decode(rfc::MESSAGE).unwrap();
        body[16..20].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(decrypt(&body, &ua, &auth), Err(DecryptError::RecordSize(0)));
        let mut body = b64::decode(rfc::MESSAGE).unwrap();
        body[16..20].copy_from_slice(&18u32.to_be_bytes());
        assert_eq!(
            decrypt(&body, &ua, &auth),
            Err(DecryptError::MultipleRecords)
        );
        let mut body = b64::decode(rfc::MESSAGE).unwrap();
        body[20] = 33;
        assert_eq!(decrypt(&body, &ua, &auth), Err(DecryptError::KeyId(33)));
    }

    #[test]
    fn keys_are_checked_for_length_form_and_curve() {
        assert_eq!(
            AuthSecret::from_base64url("AAAA").unwrap_err(),
            KeyFormatError::Length {
                expected: 16,
                actual: 3
            }
        );
        assert_eq!(
            AuthSecret::from_base64url("not base64!").unwrap_err(),
            KeyFormatError::NotBase64Url
        );
        let mut point = b64::decode(rfc::UA_PUBLIC).unwrap();
        point[64] ^= 1; // off the curve
        assert_eq!(
            public_key_from_base64url(&b64::URL_SAFE_NO_PAD.encode(&point)).unwrap_err(),
            KeyFormatError::NotOnCurve
        );
        let ua_public = public_key_from_base64url(rfc::UA_PUBLIC).unwrap();
        let compressed = ua_public.to_encoded_point(true);
        assert!(matches!(
            public_key_from_base64url(&b64::URL_SAFE_NO_PAD.encode(compressed.as_bytes())),
            Err(KeyFormatError::Length {
                expected: 65,
                actual: 33
            })
        ));
        // Padded base64url (some libraries write it) is read too.
        assert!(AuthSecret::from_base64url("BTBZMqHH6r4Tts7J_aSIgg==").is_ok());
        assert_eq!(
            format!("{:?}", AuthSecret::generate()),
            "AuthSecret(<redacted>)"
        );
    }
}

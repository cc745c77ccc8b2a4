//! `TokenKeys::verify` on hostile input. The first byte picks what the rest is:
//!
//! - 0: a whole token, as a client would send it (mostly refused at the signature);
//! - 1: the claims of a token signed with the server's own key, so the fuzzer reaches the claim
//!   checks (`sub`, `exp`, `role`, `ver`, types and sizes);
//! - 2: a header and claims (split at the first `\n`), signed with the server's key under HS256,
//!   so a header naming another algorithm (`none`, RS256, ...) is tried against a valid MAC.
//!
//! Whatever it is given, `verify` must not panic, and an identity it accepts must be exactly what
//! the signed claims say: `sub` a non-negative decimal user id, a known role, an `exp` in the
//! future, and a header that says HS256.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use parkmate_auth::{TokenKeys, now_secs};
use serde_json::Value;

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret!";

fn signed(header: &[u8], claims: &[u8]) -> String {
    let message = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let mac = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .expect("HS256 signs anything");
    format!("{message}.{mac}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = TokenKeys::new(SECRET);
    let (header, claims) = match mode % 3 {
        0 => {
            let _ = keys.verify(&String::from_utf8_lossy(rest));
            return;
        }
        1 => (br#"{"alg":"HS256","typ":"JWT"}"#.as_slice(), rest),
        _ => match rest.iter().position(|b| *b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => return,
        },
    };
    let Ok(identity) = keys.verify(&signed(header, claims)) else {
        return;
    };
    // serde skips an unknown field's string without checking its UTF-8, so an accepted token
    // may carry invalid bytes where nothing reads them; the fields that count are checked below.
    let header: Value =
        serde_json::from_str(&String::from_utf8_lossy(header)).expect("an accepted header is JSON");
    assert_eq!(
        header["alg"], "HS256",
        "accepted a header that is not HS256"
    );
    let claims: Value =
        serde_json::from_str(&String::from_utf8_lossy(claims)).expect("accepted claims are JSON");
    assert!(identity.user_id >= 0);
    // `sub` is a decimal string that parses to the id (`"+7"` and `"007"` are user 7 too).
    let sub = claims["sub"].as_str().expect("an accepted sub is a string");
    assert_eq!(sub.parse::<i64>(), Ok(identity.user_id));
    assert_eq!(claims["role"], identity.role.as_str());
    assert_eq!(claims["exp"].as_u64(), Some(identity.expires_at));
    assert!(
        identity.expires_at > now_secs().saturating_sub(1),
        "accepted an expired token"
    );
    assert_eq!(
        claims.get("ver").and_then(Value::as_i64),
        identity.token_version
    );
});

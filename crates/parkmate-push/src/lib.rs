//! Web Push from the server, self-hosted: reaching a driver whose app is closed through the push
//! service their browser chose, with no third-party account.
//!
//! How it is cut, one module per standard:
//! - [`vapid`]: the application server's identity (RFC 8292): a P-256 key pair ([`VapidKeys`],
//!   whose public half is the browser's `applicationServerKey`) and the signed
//!   `Authorization: vapid t=…, k=…` header ([`Vapid`]).
//! - [`encryption`]: the payload's encryption for one subscription (RFC 8291 over RFC 8188
//!   `aes128gcm`), and the user agent's decryption (what a browser does; the test service uses it).
//! - [`subscription`]: what the browser's `PushSubscription.toJSON()` gives
//!   ([`SubscriptionJson`]), parsed into a [`Subscription`] whose endpoint passed the
//!   [`EndpointPolicy`] (`endpoint`: https only and no private addresses in production — a user
//!   chooses that URL, so it is an SSRF vector).
//! - [`message`]: what is sent: a JSON payload within the size limit, TTL, [`Urgency`] and an
//!   optional [`Topic`] (RFC 8030 §5.2–5.4).
//! - [`deliver`]: the [`Pusher`]: one `POST` per attempt (RFC 8030 §5), a typed [`Outcome`]
//!   (delivered, gone, retry later, rejected), and bounded retries with exponential backoff and
//!   jitter ([`RetryPolicy`], `retry.rs`).
//! - `test_support` (feature `test-support`): `test_support::TestPushService`, a local push
//!   service that checks every request as a push service would (VAPID signature and claims,
//!   headers) and decrypts it as the subscribed browser would.
//!
//! What this crate does not do (the server's part): storing subscriptions, deciding *when* to
//! push (escalation after an unacknowledged socket delivery), and which node sends.

pub mod deliver;
pub mod encryption;
pub mod endpoint;
pub mod message;
mod retry;
pub mod subscription;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod vapid;

pub use deliver::{BuildError, Delivery, Outcome, PushSettings, Pusher, RetryReason, SendError};
pub use encryption::{AuthSecret, EncryptError, KeyFormatError, MAX_PLAINTEXT};
pub use endpoint::{EndpointError, EndpointPolicy};
pub use message::{Message, MessageError, Topic, TopicError, Urgency};
pub use retry::RetryPolicy;
pub use subscription::{Subscription, SubscriptionError, SubscriptionJson, SubscriptionKeys};
pub use vapid::{Subject, SubjectError, Vapid, VapidClaims, VapidError, VapidKeys};

/// base64url as Web Push writes it: RFC 4648 §5's alphabet, no padding on output. Input is read
/// with or without padding, because some libraries pad; the alphabet itself is never guessed.
pub(crate) mod b64 {
    use base64::Engine as _;
    use base64::alphabet::URL_SAFE;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

    pub use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );

    pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
        LENIENT.decode(text)
    }
}

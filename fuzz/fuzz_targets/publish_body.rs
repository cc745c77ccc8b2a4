//! The publish API's body as the server reads it: JSON into `PublishRequest`, then `parse`. No
//! input may panic, and whatever `parse` accepts must keep every rule it promises (what the store
//! is then asked to keep is bounded and well-formed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use parkmate_protocol::Audience;
use parkmate_protocol::publish::{
    MAX_DATA_BYTES, MAX_EVENT_CHARS, MAX_MESSAGE_CHARS, MAX_USER_IDS, PublishRequest,
};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<PublishRequest>(data) else {
        return;
    };
    let publish = match req.parse() {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.code().is_empty() && !e.to_string().is_empty());
            return;
        }
    };
    assert!(!publish.message.trim().is_empty());
    assert!(publish.message.chars().count() <= MAX_MESSAGE_CHARS);
    assert!(!publish.event.is_empty() && publish.event.len() <= MAX_EVENT_CHARS);
    assert!(
        publish
            .event
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    );
    assert!(publish.data.is_object());
    assert!(publish.data.to_string().len() <= MAX_DATA_BYTES);
    assert!(!publish.audiences.is_empty() && publish.audiences.len() <= MAX_USER_IDS);
    let mut users = std::collections::HashSet::new();
    for a in &publish.audiences {
        if let Audience::User(id) = a {
            assert!(*id >= 0);
            assert!(users.insert(*id), "user {id} twice");
        }
    }
    // Several audiences only come from `user_ids`.
    if publish.audiences.len() > 1 {
        assert!(
            publish
                .audiences
                .iter()
                .all(|a| matches!(a, Audience::User(_)))
        );
    }
});

//! Whatever text a socket sends, `ClientFrame::parse` answers a frame or a typed refusal (never a
//! panic), and every frame it accepts survives a round trip through its own JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parkmate_protocol::ClientFrame;

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the time they reach the parser (tungstenite refuses the rest, 1007).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientFrame::parse(text) {
        Ok(frame) => {
            let again = serde_json::to_string(&frame).expect("client frames serialise");
            assert_eq!(
                ClientFrame::parse(&again),
                Ok(frame),
                "round trip of {text:?}"
            );
        }
        Err(e) => assert!(!e.code().is_empty()),
    }
});

//! Point 3: a client that breaks RFC 6455 is told why before the connection drops: 1002
//! (protocol error) for framing, 1007 (invalid payload) for text that is not UTF-8. Before, each
//! of these only dropped the TCP connection.

use parkmate_protocol::Role;

use super::raw::RawWs;
use crate::common::spawn_app;

/// Each violation, sent on a fresh socket right after its `hello`, and the close code the server
/// must answer with.
fn violations() -> Vec<(&'static str, u8, Vec<u8>, bool, u16)> {
    vec![
        (
            "text that is not UTF-8",
            0x81,
            vec![0xff, 0xfe, 0xfd],
            true,
            1007,
        ),
        (
            "an unmasked client frame",
            0x81,
            b"{\"type\":\"ping\"}".to_vec(),
            false,
            1002,
        ),
        (
            "a reserved bit (RSV1)",
            0xC1,
            b"{\"type\":\"ping\"}".to_vec(),
            true,
            1002,
        ),
        (
            "an unknown data opcode (3)",
            0x83,
            b"x".to_vec(),
            true,
            1002,
        ),
        (
            "an unknown control opcode (11)",
            0x8B,
            b"x".to_vec(),
            true,
            1002,
        ),
        ("a ping over 125 bytes", 0x89, vec![b'p'; 126], true, 1002),
        ("a fragmented ping", 0x09, b"p".to_vec(), true, 1002),
        (
            "a continuation with nothing to continue",
            0x80,
            b"x".to_vec(),
            true,
            1002,
        ),
        (
            "a close with code 1004 (reserved)",
            0x88,
            vec![0x03, 0xEC],
            true,
            1002,
        ),
        (
            "a close whose reason is not UTF-8",
            0x88,
            vec![0x03, 0xE8, 0xff, 0xfe],
            true,
            1007,
        ),
    ]
}

#[tokio::test]
async fn protocol_violations_are_answered_with_1002_or_1007() {
    let app = spawn_app().await;
    let token = app.token(7, Role::User);
    for (what, head, payload, masked, expected) in violations() {
        let mut ws = RawWs::open(app.addr, "/ws/notifications/7/", &token).await;
        let hello = ws.next_text().await;
        assert!(hello.contains("\"hello\""), "{hello}");
        ws.send_frame(head, &payload, masked).await;
        assert_eq!(ws.close_code().await, Some(expected), "{what}");
    }
    // The sockets are gone from the node, their slots given back.
    app.wait_for_connections(0).await;
}

/// The well-formed neighbours of those frames still pass: a masked ping of 125 bytes, a text
/// message in two fragments, a normal close.
#[tokio::test]
async fn well_formed_frames_next_to_them_still_pass() {
    let app = spawn_app().await;
    let token = app.token(7, Role::User);
    let mut ws = RawWs::open(app.addr, "/ws/notifications/7/", &token).await;
    ws.next_text().await;
    ws.send_frame(0x89, &[b'p'; 125], true).await;
    let pong = ws.read_frame().await.unwrap();
    assert_eq!((pong.opcode(), pong.payload.len()), (0xA, 125));
    ws.send_frame(0x01, b"{\"type\":", true).await;
    ws.send_frame(0x80, b"\"ping\"}", true).await;
    assert_eq!(ws.next_text().await, "{\"type\":\"pong\"}");
    ws.send_frame(0x88, &[0x03, 0xE8], true).await;
    assert_eq!(ws.close_code().await, Some(1000));
}

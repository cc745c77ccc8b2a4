//! The few pieces of RFC 6455 a reading client needs: the upgrade request and the check of its
//! answer, the header of a frame from the server, and a masked frame to the server.
//!
//! Written out rather than taken from tungstenite because of where the generator's reader
//! (`crate::reader`) spends its time: tungstenite keeps a buffer per socket, hands each frame
//! out as its own `Bytes` (a `BytesMut::split_to` per frame, the largest symbol of the
//! generator's profile) and needs one more `read` per wake-up to learn that a socket is empty.
//! The reader instead parses frames in place out of one buffer shared by all its sockets and
//! keeps bytes per socket only for a frame cut in two. What a server may legally send is small,
//! and what it must not send (masked frames, reserved bits, unknown opcodes, fragmented or
//! oversized control frames) is refused here as tungstenite would.

use std::fmt;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Longest upgrade response accepted before its blank line.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Headers an upgrade response may have.
const MAX_HEADERS: usize = 32;

/// A frame's header, once the whole frame is in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    /// Bytes before the payload.
    pub header_len: usize,
    pub payload_len: usize,
}

impl Header {
    /// The whole frame's length in the buffer.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// What a server must not send (RFC 6455 §5.1–5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    ReservedBits,
    /// A server's frames are never masked.
    Masked,
    Opcode(u8),
    FragmentedControl,
    ControlTooBig,
    /// Above the reader's limit.
    TooBig(u64),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::ReservedBits => write!(f, "reserved bits set"),
            WireError::Masked => write!(f, "masked frame from the server"),
            WireError::Opcode(op) => write!(f, "unknown opcode {op:#x}"),
            WireError::FragmentedControl => write!(f, "fragmented control frame"),
            WireError::ControlTooBig => write!(f, "control frame over 125 bytes"),
            WireError::TooBig(n) => write!(f, "frame of {n} bytes over the limit"),
        }
    }
}

/// The header of the frame at the start of `data`: `None` until the whole frame (header and
/// payload) is there.
pub fn header(data: &[u8], max_payload: usize) -> Result<Option<Header>, WireError> {
    let [b0, b1, rest @ ..] = data else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WireError::ReservedBits);
    }
    if b1 & 0x80 != 0 {
        return Err(WireError::Masked);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let control = match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY => false,
        OP_CLOSE | OP_PING | OP_PONG => true,
        op => return Err(WireError::Opcode(op)),
    };
    let (len, extra) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.first_chunk::<8>() {
            Some(bytes) => (u64::from_be_bytes(*bytes), 8),
            None => return Ok(None),
        },
        n => (u64::from(n), 0),
    };
    if control && !fin {
        return Err(WireError::FragmentedControl);
    }
    if control && len > 125 {
        return Err(WireError::ControlTooBig);
    }
    let payload_len = match usize::try_from(len) {
        Ok(n) if n <= max_payload => n,
        _ => return Err(WireError::TooBig(len)),
    };
    let h = Header {
        fin,
        opcode,
        header_len: 2 + extra,
        payload_len,
    };
    Ok((data.len() >= h.frame_len()).then_some(h))
}

/// Appends one unfragmented frame from a client: masked with `mask`, as every client frame must
/// be.
pub fn client_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | (opcode & 0x0F));
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// The upgrade request for `path` (with its query) on `host`, with `key` and any `extra`
/// headers (already valid header text).
pub fn upgrade_request(host: &str, path: &str, key: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    );
    for (name, value) in extra {
        req.push_str(name);
        req.push_str(": ");
        req.push_str(value);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Checks the server's answer to an upgrade request: `Ok(None)` until its head is complete,
/// then the head's length (frames may follow it in the same bytes), or why the upgrade failed.
pub fn upgrade_response(data: &[u8], accept: &str) -> Result<Option<usize>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(data) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if data.len() < MAX_RESPONSE_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(format!(
                "handshake: response head over {MAX_RESPONSE_HEAD} bytes"
            ));
        }
        Err(e) => return Err(format!("handshake: bad response: {e}")),
    };
    match res.code {
        Some(101) => {}
        Some(code) => return Err(format!("handshake refused: HTTP {code}")),
        None => return Err("handshake: no status".into()),
    }
    let given = res
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value);
    if given != Some(accept.as_bytes()) {
        return Err("handshake: wrong or missing Sec-WebSocket-Accept".into());
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame: unmasked, as a server writes it.
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(n as u8),
            n @ 126..=0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn headers_of_each_length_encoding_and_only_when_whole() {
        for len in [0, 5, 125, 126, 300, 0xFFFF, 0x10000] {
            let payload = vec![b'x'; len];
            let f = server_frame(true, OP_TEXT, &payload);
            let h = header(&f, 1 << 20).unwrap().unwrap();
            assert_eq!((h.fin, h.opcode, h.payload_len), (true, OP_TEXT, len));
            assert_eq!(h.frame_len(), f.len());
            for cut in 0..f.len().min(12) {
                assert_eq!(header(&f[..cut], 1 << 20), Ok(None), "len {len}, cut {cut}");
            }
            assert_eq!(header(&f[..f.len() - 1], 1 << 20), Ok(None));
        }
    }

    #[test]
    fn what_a_server_must_not_send_is_refused() {
        let mut masked = server_frame(true, OP_TEXT, b"hi");
        masked[1] |= 0x80;
        assert_eq!(header(&masked, 1024), Err(WireError::Masked));
        let mut rsv = server_frame(true, OP_TEXT, b"hi");
        rsv[0] |= 0x40;
        assert_eq!(header(&rsv, 1024), Err(WireError::ReservedBits));
        assert_eq!(
            header(&server_frame(true, 0x3, b""), 1024),
            Err(WireError::Opcode(3))
        );
        assert_eq!(
            header(&server_frame(false, OP_PING, b""), 1024),
            Err(WireError::FragmentedControl)
        );
        assert_eq!(
            header(&server_frame(true, OP_PING, &[0; 126]), 1024),
            Err(WireError::ControlTooBig)
        );
        assert_eq!(
            header(&server_frame(true, OP_BINARY, &[0; 2000]), 1024),
            Err(WireError::TooBig(2000))
        );
        // Refused from the header alone, before the payload has arrived.
        assert_eq!(
            header(&server_frame(true, OP_BINARY, &[0; 2000])[..4], 1024),
            Err(WireError::TooBig(2000))
        );
    }

    #[test]
    fn client_frames_are_masked_and_unmask_to_the_payload() {
        for len in [0, 3, 125, 126, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            let mask = [0x12, 0x34, 0x56, 0x78];
            client_frame(&mut out, OP_TEXT, &payload, mask);
            assert_eq!(out[0], 0x80 | OP_TEXT);
            assert_ne!(out[1] & 0x80, 0, "masked");
            let header_len = match len {
                0..=125 => 2,
                126..=0xFFFF => 4,
                _ => 10,
            };
            assert_eq!(out[header_len..header_len + 4], mask);
            let unmasked: Vec<u8> = out[header_len + 4..]
                .iter()
                .zip(mask.iter().cycle())
                .map(|(b, m)| b ^ m)
                .collect();
            assert_eq!(unmasked, payload);
        }
    }

    #[test]
    fn the_upgrade_answer_is_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        // RFC 6455 §1.3's example key and its accept value.
        let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        let mut ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             sec-websocket-accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        let head = ok.len();
        // A frame in the same bytes as the answer.
        ok.extend_from_slice(&server_frame(true, OP_TEXT, b"hi"));
        assert_eq!(upgrade_response(&ok, accept), Ok(Some(head)));
        assert_eq!(upgrade_response(&ok[..head - 1], accept), Ok(None));
        assert!(
            upgrade_response(&ok, "AAAA")
                .unwrap_err()
                .contains("Sec-WebSocket-Accept")
        );
        let full = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            upgrade_response(full.as_bytes(), accept),
            Err("handshake refused: HTTP 503".into())
        );
        assert!(upgrade_response(&[b'x'; 20_000], accept).is_err());
        let req = String::from_utf8(upgrade_request(
            "127.0.0.1:80",
            "/ws/notifications/7/?since=3",
            key,
            &[("authorization", "Bearer t")],
        ))
        .unwrap();
        assert!(req.starts_with("GET /ws/notifications/7/?since=3 HTTP/1.1\r\n"));
        assert!(req.contains(&format!("Sec-WebSocket-Key: {key}\r\n")));
        assert!(req.ends_with("authorization: Bearer t\r\n\r\n"));
    }
}

//! A WebSocket client on a raw TCP socket, frame by frame, so tests can send what no library
//! would (unmasked frames, reserved bits, bad UTF-8), and HTTP written by hand.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::WAIT;

pub struct RawWs {
    stream: TcpStream,
    /// Bytes read past what has been parsed.
    buf: Vec<u8>,
}

/// A frame as read: FIN/RSV bits and opcode in `head`, the payload unmasked.
#[derive(Debug)]
pub struct Frame {
    pub head: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn opcode(&self) -> u8 {
        self.head & 0x0f
    }
}

impl RawWs {
    /// Opens `path` with `Authorization: Bearer <token>` and reads the 101.
    pub async fn open(addr: SocketAddr, path: &str, token: &str) -> RawWs {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut ws = RawWs {
            stream,
            buf: Vec::new(),
        };
        let head = ws.read_until_blank_line().await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        ws
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
            .await
            .expect("the server answers within the wait")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn read_until_blank_line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                return head;
            }
            assert!(
                self.fill().await,
                "the connection closed during the HTTP head"
            );
        }
    }

    /// Sends one frame: `head` is the first byte (FIN, RSV1-3, opcode), masked unless told not.
    pub async fn send_frame(&mut self, head: u8, payload: &[u8], masked: bool) {
        let mut frame = vec![head];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => frame.push(mask_bit | n as u8),
            n if n <= 0xffff => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [0x37, 0xfa, 0x21, 0x3d];
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        self.stream.write_all(&frame).await.unwrap();
    }

    /// The next frame, or `None` when the server closed the connection.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next text frame's text, skipping control frames.
    pub async fn next_text(&mut self) -> String {
        loop {
            let frame = self.read_frame().await.expect("a frame, not the end");
            match frame.opcode() {
                0x1 => return String::from_utf8(frame.payload).unwrap(),
                0x9 | 0xA => continue,
                other => panic!("expected text, got opcode {other}: {frame:?}"),
            }
        }
    }

    /// Reads until the server's close frame and returns its code; `None` when the connection
    /// ended without one.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let frame = self.read_frame().await?;
            if frame.opcode() == 0x8 {
                assert!(
                    frame.payload.len() >= 2,
                    "a close frame with a code: {frame:?}"
                );
                return Some(u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
            }
        }
    }
}

/// One server frame (unmasked) from the front of `buf`, and the bytes it took.
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let head = buf[0];
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    assert_eq!(buf[1] & 0x80, 0, "server frames are never masked");
    let payload = buf.get(at..at + len)?.to_vec();
    at += len;
    Some((Frame { head, payload }, at))
}

/// Writes `request` on a fresh connection and reads the answer until the server closes (or the
/// wait ends): the status line's code and everything read.
pub async fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    // Until the head and the body it announces are in (or the server closes).
    loop {
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("an answer within the wait")
            .unwrap_or(0);
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if n == 0 || complete(&text) {
            let status = text
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            return (status, text);
        }
    }
}

fn complete(text: &str) -> bool {
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}

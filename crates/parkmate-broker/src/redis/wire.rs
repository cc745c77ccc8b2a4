//! The wire format of bus messages (see the module above for its shape): encoded once per publish.

use std::sync::Arc;

use bytes::Bytes;
use parkmate_protocol::{Audience, Role};
use serde::{Deserialize, Serialize};

use crate::{BusEvent, Published};

#[derive(Serialize, Deserialize)]
struct NotificationHeader {
    id: i64,
    aud: String,
}

#[derive(Serialize, Deserialize)]
struct ReadStateWire {
    user_id: i64,
    count: i64,
    as_of: i64,
}

fn audience_to_wire(a: Audience) -> String {
    match a {
        Audience::User(id) => format!("user:{id}"),
        Audience::Role(r) => format!("role:{}", r.as_str()),
        Audience::Lot(id) => format!("lot:{id}"),
        Audience::All => "all".to_owned(),
    }
}

fn audience_from_wire(s: &str) -> Option<Audience> {
    match s.split_once(':') {
        Some(("user", id)) => id.parse().ok().map(Audience::User),
        Some(("role", r)) => r.parse::<Role>().ok().map(Audience::Role),
        Some(("lot", id)) => id.parse().ok().map(Audience::Lot),
        None if s == "all" => Some(Audience::All),
        _ => None,
    }
}

/// Encodes an event for the bus (once per publish, whatever the number of nodes).
pub fn encode(event: &BusEvent) -> Bytes {
    match event {
        BusEvent::Notification(p) => {
            let header = NotificationHeader {
                id: p.id,
                aud: audience_to_wire(p.audience),
            };
            let header = serde_json::to_vec(&header).unwrap_or_default();
            let mut out = Vec::with_capacity(1 + header.len() + 1 + p.frame.len());
            out.push(b'N');
            out.extend_from_slice(&header);
            // Compact JSON never contains a raw newline, so the first one ends the header.
            out.push(b'\n');
            out.extend_from_slice(&p.frame);
            Bytes::from(out)
        }
        BusEvent::ReadState {
            user_id,
            count,
            as_of,
        } => {
            let mut out = vec![b'R'];
            let wire = ReadStateWire {
                user_id: *user_id,
                count: *count,
                as_of: *as_of,
            };
            out.extend_from_slice(&serde_json::to_vec(&wire).unwrap_or_default());
            Bytes::from(out)
        }
    }
}

/// Decodes a bus message; `None` for anything malformed (logged and dropped by the caller).
pub fn decode(payload: &[u8]) -> Option<BusEvent> {
    let (&tag, rest) = payload.split_first()?;
    match tag {
        b'N' => {
            let split = rest.iter().position(|&b| b == b'\n')?;
            let header: NotificationHeader = serde_json::from_slice(&rest[..split]).ok()?;
            Some(BusEvent::Notification(Arc::new(Published {
                id: header.id,
                audience: audience_from_wire(&header.aud)?,
                frame: Bytes::copy_from_slice(&rest[split + 1..]),
            })))
        }
        b'R' => {
            let wire: ReadStateWire = serde_json::from_slice(rest).ok()?;
            Some(BusEvent::ReadState {
                user_id: wire.user_id,
                count: wire.count,
                as_of: wire.as_of,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_frames_travel_as_is() {
        let frame = Bytes::from_static(br#"{"type":"notification","id":7,"message":"a\nb"}"#);
        for audience in [
            Audience::User(42),
            Audience::Role(Role::Owner),
            Audience::Lot(3),
            Audience::All,
        ] {
            let event = BusEvent::Notification(Arc::new(Published {
                id: 7,
                audience,
                frame: frame.clone(),
            }));
            assert_eq!(decode(&encode(&event)), Some(event));
        }
        let event = BusEvent::ReadState {
            user_id: 1,
            count: 2,
            as_of: 3,
        };
        assert_eq!(decode(&encode(&event)), Some(event));
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"Xjunk"), None);
        assert_eq!(decode(b"N{\"id\":1,\"aud\":\"nobody\"}\n{}"), None);
        assert_eq!(decode(b"N{\"id\":1,\"aud\":\"lot:x\"}\n{}"), None);
    }
}

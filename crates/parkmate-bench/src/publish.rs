//! Publishing through `POST /api/notifications` with the API key, as a backend would. Every body
//! carries `data.t` = µs since the Unix epoch taken just before the request, so a receiving worker
//! can measure publish→receive latency on the same clock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::proto::new_histogram;
use crate::pusher::{self, PusherApp};
use crate::worker::now_us;

/// Who a publish goes to.
#[derive(Debug, Clone, Copy)]
pub enum To {
    User(i64),
    Everyone,
}

#[derive(Clone)]
pub struct Publisher {
    http: reqwest::Client,
    targets: Arc<Vec<SocketAddr>>,
    api_key: Arc<str>,
    /// Publish through a Pusher peer's HTTP API instead of ours.
    pusher: Option<Arc<PusherApp>>,
    /// The Pusher publisher's own notification ids (a Pusher server assigns none).
    next_id: Arc<AtomicI64>,
}

#[derive(Debug, Default)]
pub struct PublishReport {
    /// Answered 201.
    pub ok: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// HTTP request latency, µs.
    pub http_us: Option<Histogram<u64>>,
}

impl PublishReport {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Tally {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    http_us: Histogram<u64>,
}

impl Publisher {
    pub fn new(targets: Vec<SocketAddr>, api_key: &str) -> Publisher {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a plain HTTP client builds");
        Publisher {
            http,
            targets: Arc::new(targets),
            api_key: api_key.into(),
            pusher: None,
            next_id: Arc::new(AtomicI64::new(1)),
        }
    }

    /// The same publisher speaking to a Pusher peer (`POST /apps/{id}/events`).
    pub fn for_pusher(targets: Vec<SocketAddr>, app: PusherApp) -> Publisher {
        Publisher {
            pusher: Some(Arc::new(app)),
            ..Publisher::new(targets, "")
        }
    }

    /// One event through the Pusher HTTP API; returns the id the publisher gave it.
    async fn publish_pusher(
        &self,
        app: &PusherApp,
        target: SocketAddr,
        to: To,
    ) -> Result<Vec<i64>, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let channel = match to {
            To::User(u) => PusherApp::user_channel(u),
            To::Everyone => pusher::BROADCAST_CHANNEL.to_owned(),
        };
        // The same fields our notifications carry, as Pusher's string-encoded `data`.
        let data = json!({"id": id, "level": "info", "message": "bench", "t": now_us()});
        let body = serde_json::to_vec(
            &json!({"name": pusher::EVENT, "channel": channel, "data": data.to_string()}),
        )
        .map_err(|e| e.to_string())?;
        let path = app.signed_events_path(&body, now_us() / 1_000_000);
        let r = self
            .http
            .post(format!("http://{target}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("publish: {e}"))?;
        let status = r.status().as_u16();
        if status != 200 {
            let text = r.text().await.unwrap_or_default();
            return Err(format!("publish answered {status}: {text}"));
        }
        Ok(vec![id])
    }

    /// One publish to `targets[seq % len]`; returns the stored ids.
    pub async fn publish(&self, seq: usize, to: To) -> Result<Vec<i64>, String> {
        let target = self.targets[seq % self.targets.len()];
        if let Some(app) = &self.pusher {
            return self.publish_pusher(app, target, to).await;
        }
        let mut body =
            json!({"level": "info", "message": "bench", "event": "bench", "data": {"t": now_us()}});
        match to {
            To::User(u) => body["user_id"] = json!(u),
            To::Everyone => body["broadcast"] = json!(true),
        }
        let r = self
            .http
            .post(format!("http://{target}/api/notifications"))
            .bearer_auth(&*self.api_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("publish: {e}"))?;
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        if status != 201 {
            return Err(format!("publish answered {status}: {v}"));
        }
        Ok(v["ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i.as_i64()).collect())
            .unwrap_or_default())
    }

    /// `count` publishes at `rate`/s (0 = as fast as possible) from `concurrency` connections, each
    /// to `pick(seq)`. Stops early at `until`. A publisher that falls behind schedule sends at once
    /// (the stamp is the actual send time; the HTTP latency histogram shows the queueing).
    pub async fn paced(
        &self,
        count: usize,
        rate: f64,
        concurrency: usize,
        until: tokio::time::Instant,
        pick: impl Fn(usize) -> To + Send + Sync + 'static,
    ) -> PublishReport {
        let concurrency = concurrency.clamp(1, count.max(1));
        let tally = Arc::new(Mutex::new(Tally {
            ok: 0,
            failed: 0,
            first_error: None,
            http_us: new_histogram(),
        }));
        let pick = Arc::new(pick);
        let start = Instant::now();
        let t0 = tokio::time::Instant::now();
        let lanes = (0..concurrency).map(|lane| {
            let (me, tally, pick) = (self.clone(), tally.clone(), pick.clone());
            async move {
                let mut seq = lane;
                while seq < count {
                    if rate > 0.0 {
                        let at = t0 + Duration::from_secs_f64(seq as f64 / rate);
                        if at >= until {
                            return;
                        }
                        tokio::time::sleep_until(at).await;
                    } else if tokio::time::Instant::now() >= until {
                        return;
                    }
                    let sent = Instant::now();
                    let r = me.publish(seq, pick(seq)).await;
                    let us = sent.elapsed().as_micros() as u64;
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.http_us.saturating_record(us.max(1));
                    match r {
                        Ok(_) => t.ok += 1,
                        Err(e) => {
                            t.failed += 1;
                            t.first_error.get_or_insert(e);
                        }
                    }
                    seq += concurrency;
                }
            }
        });
        join_all(lanes).await;
        let t = Arc::try_unwrap(tally)
            .ok()
            .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()));
        let Some(t) = t else {
            return PublishReport::default();
        };
        PublishReport {
            ok: t.ok,
            failed: t.failed,
            first_error: t.first_error,
            elapsed: start.elapsed(),
            http_us: Some(t.http_us),
        }
    }
}

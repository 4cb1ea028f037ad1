//! The change feed's test side: a store's state for a token, streams read
//! event by event through the router, and what a feed should have sent.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use futures_util::FutureExt;
use http_body_util::BodyExt;

use common::testkit::sse::{self, Sse};
use common::{sample, Event, Store};
use query::{hash_token, AppState, Auth, TokenConfig};

pub const TOKEN: &str = "feed-token";

pub fn events() -> Vec<Event> {
    sample::events(&sample::Shape {
        records: 60,
        projects: 3,
        regions: 2,
        seed: 11,
    })
}

pub fn project(i: usize) -> String {
    sample::project_id(i)
}

pub fn state(store: Arc<Store>, scope: Vec<String>) -> AppState {
    let auth = Auth::new(&[TokenConfig {
        name: "t".into(),
        sha256: hex::encode(hash_token(TOKEN)),
        projects: scope,
    }])
    .unwrap();
    AppState::new(store, auth, None)
}

/// Applies `events` as one batch at offsets `from..`.
pub fn apply(store: &Store, events: &[Event], from: usize) {
    store
        .apply_batch(&common::testkit::messages(events, from))
        .unwrap();
}

/// An open stream: the response body, read event by event.
pub struct Stream {
    pub body: Body,
    buf: String,
}

impl Stream {
    pub async fn open(state: AppState, uri: &str, last_event_id: Option<&str>) -> Stream {
        let (status, stream) = Self::try_open(state, uri, last_event_id).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        stream
    }

    pub async fn try_open(
        state: AppState,
        uri: &str,
        last_event_id: Option<&str>,
    ) -> (StatusCode, Stream) {
        let mut headers = vec![("X-Auth-Token", TOKEN)];
        headers.extend(last_event_id.map(|id| ("Last-Event-ID", id)));
        let resp = super::send(state, uri, &headers).await;
        let status = resp.status();
        if status == StatusCode::OK {
            assert_eq!(resp.headers()["content-type"], "text/event-stream");
        }
        (
            status,
            Stream {
                body: resp.into_body(),
                buf: String::new(),
            },
        )
    }

    /// The next event (comments skipped), or `None` when the stream ended or
    /// nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Sse> {
        loop {
            if let Some(e) = sse::take(&mut self.buf) {
                return Some(e);
            }
            match tokio::time::timeout(wait, self.body.frame()).await {
                Ok(Some(frame)) => {
                    if let Ok(bytes) = frame.unwrap().into_data() {
                        self.buf.push_str(std::str::from_utf8(&bytes).unwrap());
                    }
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Polls the stream once without waiting: whatever it has ready is
    /// kept for `next`, and it starts what it does on a first poll.
    pub fn poke(&mut self) {
        if let Some(Some(Ok(frame))) = self.body.frame().now_or_never() {
            if let Ok(bytes) = frame.into_data() {
                self.buf.push_str(std::str::from_utf8(&bytes).unwrap());
            }
        }
    }

    /// Every event until nothing comes for a moment.
    pub async fn drain(&mut self) -> Vec<Sse> {
        let mut out = Vec::new();
        while let Some(e) = self.next(Duration::from_millis(300)).await {
            out.push(e);
        }
        out
    }
}

pub fn ids(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e.data["replication_record"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The records of `events`, folded, that a feed of `project` filtered by
/// `status` shows, as the store numbers its changes: (seq, id) in order.
pub fn listed(
    store: &Store,
    since: u64,
    project: &str,
    status: Option<&str>,
) -> Vec<(u64, String)> {
    match store.view().changes_since(since).unwrap() {
        common::store::changes::Since::Changes(cs) => cs
            .into_iter()
            .filter(|c| {
                let r = &c.record;
                (r.source_project_id.as_deref() == Some(project)
                    || r.destination_project_id.as_deref() == Some(project))
                    && status.is_none_or(|s| r.status.as_str() == s)
            })
            .map(|c| (c.seq, c.record.id))
            .collect(),
        common::store::changes::Since::Reset | common::store::changes::Since::Ahead => {
            panic!("reset")
        }
    }
}

//! The change feed against batches being applied as streams open: a stream
//! that subscribes (new, or resuming) while a batch is between deciding who
//! listens and publishing must still get every change of it. The batch is
//! held in that window by the store's test hook, so the interleaving is
//! chosen, not left to timing.

use std::sync::Arc;
use std::time::Duration;

use common::{Event, Store};
use proptest::prelude::*;

mod support;
use support::feed::*;

/// Applies `events` at offsets `from..` on a thread of its own, held in the
/// window until the returned sender fires (or is dropped).
fn apply_held(
    store: &Arc<Store>,
    events: &[Event],
    from: usize,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let held = store.feed().hold_next_batch();
    let (store, events) = (store.clone(), events.to_vec());
    let writer = std::thread::spawn(move || apply(&store, &events, from));
    held.reached
        .recv_timeout(Duration::from_secs(10))
        .expect("the batch reached the window");
    (held.release, writer)
}

fn uri(project: &str) -> String {
    format!("/v1/{project}/replication_records/changes")
}

/// What a stream sent, as (change seq, record id).
fn sent(events: &[common::testkit::sse::Sse]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|e| {
            assert_eq!(e.event, "record", "{e:?}");
            (e.id.unwrap(), ids(std::slice::from_ref(e))[0].clone())
        })
        .collect()
}

/// The race as it was: the first dashboard opened while ingest is busy
/// subscribed after the batch found no listener, read the old head, and was
/// sent nothing of that batch, never told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opened_while_a_batch_is_applied_gets_every_change_of_it() {
    for resume in [false, true] {
        let store = Arc::new(Store::temporary().unwrap());
        let ev = events();
        let (first, rest) = ev.split_at(ev.len() / 2);
        apply(&store, first, 0);
        let head = store.feed().head();
        let (release, writer) = apply_held(&store, rest, first.len());
        let since = head.to_string();
        let mut s = Stream::open(
            state(store.clone(), vec![project(0)]),
            &uri(&project(0)),
            resume.then_some(since.as_str()),
        )
        .await;
        // The stream has subscribed and read the head (or the backlog) with
        // the batch still unwritten.
        s.poke();
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).unwrap();
        writer.join().unwrap();
        let want = listed(&store, head, &project(0), None);
        assert!(!want.is_empty());
        assert_eq!(sent(&s.drain().await), want, "resume: {resume}");
    }
}

/// One step of an interleaving: a batch of the next `len` events, with
/// streams opened before it and while it is held in the window; `close`:
/// every open stream is checked and closed first, so the batch may find
/// no one listening.
#[derive(Debug, Clone)]
struct Step {
    len: usize,
    close: bool,
    before: Vec<Open>,
    during: Vec<Open>,
}

/// A stream to open: its project, and a resume point as a distance back
/// from the head (`None`: a new client).
#[derive(Debug, Clone)]
struct Open {
    project: usize,
    back: Option<u64>,
}

fn open() -> impl Strategy<Value = Open> {
    (0usize..3, proptest::option::of(0u64..40)).prop_map(|(project, back)| Open { project, back })
}

fn step() -> impl Strategy<Value = Step> {
    (
        1usize..12,
        proptest::bool::weighted(0.3),
        proptest::collection::vec(open(), 0..2),
        proptest::collection::vec(open(), 0..3),
    )
        .prop_map(|(len, close, before, during)| Step {
            len,
            close,
            before,
            during,
        })
}

/// A stream opened at `start`: at the end it must have sent exactly the
/// changes above `start` that its project lists, in order.
struct Opened {
    project: String,
    start: u64,
    stream: Stream,
}

async fn open_stream(store: &Arc<Store>, o: &Open) -> Opened {
    let head = store.feed().head();
    let start = o.back.map_or(head, |b| head.saturating_sub(b));
    let since = start.to_string();
    let project = project(o.project);
    let mut stream = Stream::open(
        state(store.clone(), vec!["*".into()]),
        &uri(&project),
        o.back.is_some().then_some(since.as_str()),
    )
    .await;
    stream.poke();
    Opened {
        project,
        start,
        stream,
    }
}

/// Drains every stream and checks it against the change log.
async fn check_all(store: &Arc<Store>, streams: Vec<Opened>) -> Result<(), TestCaseError> {
    let drained = futures_util::future::join_all(streams.into_iter().map(|mut o| async move {
        let got = sent(&o.stream.drain().await);
        (got, listed(store, o.start, &o.project, None), o)
    }))
    .await;
    for (got, want, o) in drained {
        prop_assert_eq!(got, want, "stream of {} from {}", o.project, o.start);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Whatever the interleaving of new and resuming streams with batches —
    /// opened between batches or inside a batch's window, with or without
    /// other streams listening — every stream sends every change above its
    /// start point that its project lists.
    #[test]
    fn every_stream_sends_every_change_after_its_start(steps in proptest::collection::vec(step(), 1..6)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = Arc::new(Store::temporary().unwrap());
            let ev = events();
            let mut at = 0;
            let mut streams = Vec::new();
            for step in &steps {
                if step.close {
                    check_all(&store, std::mem::take(&mut streams)).await?;
                }
                for o in &step.before {
                    streams.push(open_stream(&store, o).await);
                }
                let end = (at + step.len).min(ev.len());
                if at == end {
                    break;
                }
                let (release, writer) = apply_held(&store, &ev[at..end], at);
                for o in &step.during {
                    streams.push(open_stream(&store, o).await);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                release.send(()).unwrap();
                writer.join().unwrap();
                at = end;
            }
            check_all(&store, streams).await
        })?;
    }
}

//! The change feed and the project picker through the router (`oneshot`
//! against a real store): what a stream sends live and on resume, its
//! filters, resets, its cap, its end at shutdown, and its 4xx.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;

use common::{Message, Store};
use query::{app, Limits};
use tower::ServiceExt;

mod support;

use support::feed::*;

#[tokio::test]
async fn a_live_stream_sends_each_change_under_the_project_with_its_sequence() {
    let store = Arc::new(Store::temporary().unwrap());
    let ev = events();
    let (first, rest) = ev.split_at(ev.len() / 2);
    apply(&store, first, 0);
    let head = store.feed().head();
    let st = state(store.clone(), vec![project(0)]);
    let uri = format!("/v1/{}/replication_records/changes", project(0));
    let mut s = Stream::open(st, &uri, None).await;
    // Nothing before the stream opened is sent without a resume point.
    assert_eq!(s.next(Duration::from_millis(200)).await, None);
    apply(&store, rest, first.len());
    let got = s.drain().await;
    let want = listed(&store, head, &project(0), None);
    assert!(!want.is_empty());
    assert_eq!(
        got.iter()
            .map(|e| (e.id.unwrap(), ids(std::slice::from_ref(e))[0].clone()))
            .collect::<Vec<_>>(),
        want
    );
    assert!(got.iter().all(|e| e.event == "record"));
    // The data is the record in the list's shape, as it is now.
    let last = got.last().unwrap();
    let id = last.data["replication_record"]["id"].as_str().unwrap();
    let now = store.view().get(&project(0), id).unwrap().unwrap();
    assert_eq!(
        last.data["replication_record"],
        serde_json::to_value(&now).unwrap()
    );
}

/// A filtered stream sends the changes that leave a record inside its
/// filters as records, and the ones that leave it outside as `removed`.
#[tokio::test]
async fn filters_apply_to_the_record_after_the_change() {
    let store = Arc::new(Store::temporary().unwrap());
    let st = state(store.clone(), vec!["*".into()]);
    let uri = format!(
        "/v1/{}/replication_records/changes?status=success",
        project(1)
    );
    let mut s = Stream::open(st, &uri, None).await;
    apply(&store, &events(), 0);
    let got = s.drain().await;
    let want = listed(&store, 0, &project(1), Some("success"));
    assert!(!want.is_empty());
    let of = |kind: &str| -> Vec<u64> {
        got.iter()
            .filter(|e| e.event == kind)
            .map(|e| e.id.unwrap())
            .collect()
    };
    assert_eq!(of("record"), want.iter().map(|w| w.0).collect::<Vec<_>>());
    // Every other change of the project's records left them outside the
    // filter: the client is told, so a record that stopped matching does
    // not linger on its page.
    let project_changes: Vec<u64> = listed(&store, 0, &project(1), None)
        .into_iter()
        .map(|c| c.0)
        .collect();
    let mut all = [of("record"), of("removed")].concat();
    all.sort();
    assert_eq!(all, project_changes);
    assert!(!of("removed").is_empty());
}

#[tokio::test]
async fn a_resume_point_replays_what_followed_it_and_last_event_id_wins() {
    let store = Arc::new(Store::temporary().unwrap());
    let ev = events();
    apply(&store, &ev[..20], 0);
    apply(&store, &ev[20..], 20);
    let st = state(store.clone(), vec![project(0)]);
    let since = 5;
    let want = listed(&store, since, &project(0), None);
    // `since` in the URL, and Last-Event-ID winning over a different `since`.
    for (uri, header) in [
        (
            format!(
                "/v1/{}/replication_records/changes?since={since}",
                project(0)
            ),
            None,
        ),
        (
            format!("/v1/{}/replication_records/changes?since=0", project(0)),
            Some("5"),
        ),
    ] {
        let mut s = Stream::open(st.clone(), &uri, header).await;
        let got = s.drain().await;
        assert_eq!(
            got.iter()
                .map(|e| (e.id.unwrap(), ids(std::slice::from_ref(e))[0].clone()))
                .collect::<Vec<_>>(),
            want,
            "{uri} {header:?}"
        );
    }
}

/// Event ids name their store: a resume point from another store (one
/// rebuilt from the topic numbers its changes afresh) is a reset, even when
/// its number is one this store also has; this store's own id resumes.
#[tokio::test]
async fn a_resume_point_from_another_store_gets_a_reset() {
    let ev = events();
    let (old, new) = (
        Arc::new(Store::temporary().unwrap()),
        Arc::new(Store::temporary().unwrap()),
    );
    for store in [&old, &new] {
        apply(store, &ev[..20], 0);
        apply(store, &ev[20..], 20);
    }
    assert_ne!(old.feed().id(), new.feed().id());
    let uri = format!("/v1/{}/replication_records/changes?since=0", project(0));
    let mut s = Stream::open(state(old.clone(), vec![project(0)]), &uri, None).await;
    let first = s.next(Duration::from_secs(2)).await.expect("a change");
    assert_eq!(first.feed.as_deref(), Some(old.feed().id()));
    let resume = format!("{}-{}", old.feed().id(), first.id.unwrap());
    let st = state(new.clone(), vec![project(0)]);
    let mut s = Stream::open(st.clone(), &uri, Some(&resume)).await;
    let e = s.next(Duration::from_secs(2)).await.expect("a reset");
    assert_eq!(e.event, "reset");
    assert!(e.data["reason"].as_str().unwrap().contains("another store"));
    // The same number under this store's own id resumes.
    let own = format!("{}-{}", new.feed().id(), first.id.unwrap());
    let mut s = Stream::open(st, &uri, Some(&own)).await;
    let got = s.drain().await;
    assert_eq!(
        got.iter()
            .map(|e| (e.id.unwrap(), ids(std::slice::from_ref(e))[0].clone()))
            .collect::<Vec<_>>(),
        listed(&new, first.id.unwrap(), &project(0), None)
    );
}

#[tokio::test]
async fn a_resume_point_out_of_the_retention_gets_a_reset_and_the_stream_ends() {
    let store = Arc::new(Store::temporary().unwrap());
    store.feed().set_change_retention(5);
    let ev = events();
    for (i, chunk) in ev.chunks(10).enumerate() {
        apply(&store, chunk, i * 10);
    }
    let st = state(store.clone(), vec!["*".into()]);
    // Each with its own reason: a resume point ahead of the store's last
    // change was told it was "older than the retained changes".
    for (since, why) in [
        ("1".to_owned(), "older than the retained"),
        (
            (store.feed().head() + 1).to_string(),
            "past this store's last change",
        ),
    ] {
        let uri = format!(
            "/v1/{}/replication_records/changes?since={since}",
            project(0)
        );
        let mut s = Stream::open(st.clone(), &uri, None).await;
        let e = s.next(Duration::from_secs(2)).await.expect("a reset");
        assert_eq!(e.event, "reset", "since={since}");
        let reason = e.data["reason"].as_str().unwrap();
        assert!(reason.contains(why), "since={since}: {reason}");
        assert_eq!(
            s.next(Duration::from_secs(2)).await,
            None,
            "the stream ends"
        );
    }
}

/// Far more batches than a live subscriber may lag, none read meanwhile:
/// ingest does not wait, and the stream reads what it missed from the log.
#[tokio::test]
async fn a_client_that_falls_behind_the_live_changes_catches_up_from_the_log() {
    let store = Arc::new(Store::temporary().unwrap());
    let head = store.feed().head();
    let st = state(store.clone(), vec!["*".into()]);
    let uri = format!("/v1/{}/replication_records/changes", project(0));
    let mut s = Stream::open(st, &uri, None).await;
    let ev = events();
    for i in 0..200 {
        apply(&store, &ev[i % ev.len()..][..1], i);
    }
    let got = s.drain().await;
    assert!(got.iter().all(|e| e.event == "record"), "{got:?}");
    let got: Vec<(u64, String)> = got
        .iter()
        .map(|e| (e.id.unwrap(), ids(std::slice::from_ref(e))[0].clone()))
        .collect();
    assert_eq!(got, listed(&store, head, &project(0), None));
}

/// ... unless what it missed is no longer retained: then it is told to
/// reload.
#[tokio::test]
async fn a_client_that_falls_behind_the_retention_gets_a_reset() {
    let store = Arc::new(Store::temporary().unwrap());
    store.feed().set_change_retention(10);
    let st = state(store.clone(), vec!["*".into()]);
    let uri = format!("/v1/{}/replication_records/changes", project(0));
    let mut s = Stream::open(st, &uri, None).await;
    let ev = events();
    for i in 0..200 {
        apply(&store, &ev[i % ev.len()..][..1], i);
    }
    let got = s.drain().await;
    let last = got.last().expect("a reset");
    assert_eq!(last.event, "reset", "{got:?}");
    assert!(last.data["reason"]
        .as_str()
        .unwrap()
        .contains("no longer retained"));
}

/// A resume's backlog is read after the headers are sent, so the request
/// timeout never cuts it (issue 29, item 4: `since=0` on a 20,000-record
/// store answered 408): here a timeout of 1 ms, and a backlog of thousands
/// of changes read whole.
#[tokio::test]
async fn a_resumed_backlog_is_not_cut_by_the_request_timeout() {
    let store = Arc::new(Store::temporary().unwrap());
    let ev = common::sample::events(&common::sample::Shape {
        records: 3000,
        projects: 1,
        regions: 2,
        seed: 12,
    });
    for (i, chunk) in ev.chunks(2000).enumerate() {
        apply(&store, chunk, i * 2000);
    }
    let st = state(store.clone(), vec!["*".into()]).with_limits(Limits {
        request_timeout: Duration::from_millis(1),
        ..Limits::default()
    });
    let uri = format!("/v1/{}/replication_records/changes?since=0", project(0));
    let (status, s) = Stream::try_open(st, &uri, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut s = s;
    let want = listed(&store, 0, &project(0), None);
    assert!(want.len() > 2000, "{} changes", want.len());
    let mut got = Vec::new();
    while got.len() < want.len() {
        let e = s.next(Duration::from_secs(10)).await.expect("the backlog");
        got.push((e.id.unwrap(), ids(std::slice::from_ref(&e))[0].clone()));
    }
    assert_eq!(got, want);
}

#[tokio::test]
async fn streams_have_their_own_cap_and_end_at_shutdown() {
    let store = Arc::new(Store::temporary().unwrap());
    let closing = tokio_util::sync::CancellationToken::new();
    let st = state(store.clone(), vec!["*".into()])
        .with_limits(Limits {
            max_streams: 1,
            max_concurrent: 1,
            request_timeout: Duration::from_millis(100),
            ..Limits::default()
        })
        .with_closing(closing.clone());
    let uri = format!("/v1/{}/replication_records/changes", project(0));
    let mut first = Stream::open(st.clone(), &uri, None).await;
    assert_eq!(st.metrics.streams_open(), 1, "tracker_streams_open");
    let (status, mut refused) = Stream::try_open(st.clone(), &uri, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body = refused
        .body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("TRK.OVERLOADED"), "{body}");
    // Said as what it is (it said "too many concurrent requests").
    assert!(
        body.contains("too many change feeds open (max_streams: 1)"),
        "{body}"
    );
    // A stream holds no request slot and outlives the request timeout.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = support::get(st.clone(), "/v1/projects", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    apply(&store, &events()[..3], 0);
    assert!(first.next(Duration::from_secs(2)).await.is_some());
    closing.cancel();
    assert_eq!(
        first.next(Duration::from_secs(2)).await,
        None,
        "ended at shutdown"
    );
    drop(first);
    assert_eq!(st.metrics.streams_open(), 0);
    // The slot is free again (the stream was dropped).
    let (status, _) = Stream::try_open(st.with_closing(Default::default()), &uri, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_feed_requests_are_refused_naming_the_fault() {
    let store = Arc::new(Store::temporary().unwrap());
    let st = state(store, vec![project(0)]);
    let base = format!("/v1/{}/replication_records/changes", project(0));
    for (uri, last, want, names) in [
        (
            format!("{base}?since=abc"),
            None,
            StatusCode::BAD_REQUEST,
            "since",
        ),
        (
            format!("{base}?status=done"),
            None,
            StatusCode::BAD_REQUEST,
            "status",
        ),
        (
            base.clone(),
            Some("x1"),
            StatusCode::BAD_REQUEST,
            "Last-Event-ID",
        ),
        // Empty, like any parameter without a value.
        (
            base.clone(),
            Some(" "),
            StatusCode::BAD_REQUEST,
            "TRK.EMPTY_PARAMETER",
        ),
        (
            format!("/v1/{}/replication_records/changes", project(1)),
            None,
            StatusCode::FORBIDDEN,
            "TRK.PROJECT_FORBIDDEN",
        ),
    ] {
        let (status, mut s) = Stream::try_open(st.clone(), &uri, last).await;
        assert_eq!(status, want, "{uri}");
        let bytes = s.body.frame().await.unwrap().unwrap().into_data().unwrap();
        let body = String::from_utf8_lossy(&bytes);
        assert!(body.contains(names), "{uri}: {body}");
    }
    // Twice, like `since` twice: refused, not the first taken.
    let resp = support::send(
        st.clone(),
        &base,
        &[
            ("X-Auth-Token", TOKEN),
            ("Last-Event-ID", "1"),
            ("Last-Event-ID", "2"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains("TRK.DUPLICATE_HEADER"));
    let (status, body) = support::get(st, &base, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn projects_are_those_with_records_the_token_may_read() {
    let store = Arc::new(Store::temporary().unwrap());
    apply(&store, &events(), 0);
    let all = store.view().projects().unwrap();
    assert!(all.len() >= 3, "{all:?}");
    let (status, body) = support::get(
        state(store.clone(), vec!["*".into()]),
        "/v1/projects",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["projects"], serde_json::json!(all));
    let scope = vec![project(1), "no-records-here".into()];
    let (_, body) = support::get(state(store, scope), "/v1/projects", Some(TOKEN)).await;
    assert_eq!(body["projects"], serde_json::json!([project(1)]));
}

#[tokio::test]
async fn a_quiet_stream_sends_keep_alive_comments_even_while_others_change() {
    let store = Arc::new(Store::temporary().unwrap());
    let st = state(store.clone(), vec!["*".into()]).with_limits(Limits {
        keep_alive: Duration::from_millis(300),
        ..Limits::default()
    });
    // A project none of the events names.
    let uri = "/v1/p-quiet/replication_records/changes";
    let (_, mut s) = Stream::try_open(st, uri, None).await;
    // Batches of other projects keep coming, faster than the keep-alive
    // interval: they must not hold the keep-alive back.
    let busy = {
        let store = store.clone();
        tokio::spawn(async move {
            for (i, e) in events().iter().enumerate().take(40) {
                apply(&store, std::slice::from_ref(e), i);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let frame = tokio::time::timeout(Duration::from_secs(1), s.body.frame())
        .await
        .expect("a keep-alive within 1 s")
        .unwrap()
        .unwrap();
    assert_eq!(&frame.into_data().unwrap()[..], b": keep-alive\n\n");
    busy.abort();
}

#[tokio::test]
async fn the_feed_answers_a_wrong_method_like_every_route() {
    let st = state(Arc::new(Store::temporary().unwrap()), vec!["*".into()]);
    let resp = app(st)
        .oneshot(
            axum::http::Request::post(format!("/v1/{}/replication_records/changes", project(0)))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("TRK.METHOD_NOT_ALLOWED"));
}

#[tokio::test]
async fn a_record_moved_to_another_project_is_removed_from_the_old_feed() {
    let store = Arc::new(Store::temporary().unwrap());
    let st = state(store.clone(), vec!["*".into()]);
    let event = |n: i64, ty: &str, project: &str| {
        Message {
        topic: "t".into(),
        partition: 0,
        offset: n,
        key: None,
        payload: Some(
            format!(
                r#"{{"schema_version":1,"event_id":"e{n}","type":"{ty}","record_id":"moved","occurred_at":"2024-05-01T00:00:0{n}Z","record":{{"source_project_id":"{project}"}}}}"#
            )
            .into_bytes(),
        ),
    }
    };
    let feed = |p: &str| format!("/v1/{p}/replication_records/changes");
    let mut old = Stream::open(st.clone(), &feed("p-old"), None).await;
    let mut new = Stream::open(st.clone(), &feed("p-new"), None).await;
    store.apply_batch(&[event(1, "queued", "p-old")]).unwrap();
    // A later event names another source project: the last writer wins.
    store.apply_batch(&[event(2, "started", "p-new")]).unwrap();
    let got = old.drain().await;
    assert_eq!(
        got.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["record", "removed"]
    );
    assert_eq!(got[1].data, serde_json::json!({"id": "moved"}));
    assert_eq!(got[1].id, Some(2));
    let got = new.drain().await;
    assert_eq!(ids(&got), ["moved"]);
    assert_eq!(
        got[0].data["replication_record"]["source_project_id"],
        "p-new"
    );
    // Resumed from the start, the old project's feed never shows the record
    // as it is now (under another project), only that it left.
    let mut again = Stream::open(st, &format!("{}?since=0", feed("p-old")), None).await;
    let got = again.drain().await;
    assert_eq!(
        got.iter()
            .map(|e| (e.id, e.event.as_str()))
            .collect::<Vec<_>>(),
        [(Some(2), "removed")]
    );
}

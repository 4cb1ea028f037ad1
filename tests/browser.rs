//! The dashboard page in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver, with fantoccini) against a tracker fed
//! through the real broker (tansu). `#[ignore]`d for a bare `cargo test`;
//! `scripts/test` installs chromium, chromedriver and tansu and runs it.
//! With `TRACKER_SCREENSHOT=<path>` it saves the page at 1280×800 there (the
//! README's `docs/dashboard.png`).

#[path = "browser/page.rs"]
mod page;
mod support;

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{json, Value};

use page::*;
use support::*;

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tansu, chromium and chromedriver: run scripts/test"]
async fn the_dashboard_shows_what_the_api_says_and_updates_live() {
    let broker = Broker::start();
    let topic = broker.create_topic(3);
    // Records over the last 30 days, so the chart and the stuck tile have
    // something to show.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let month = 30 * 86_400_000_000i64;
    let shape = common::sample::Shape {
        records: 300,
        projects: 4,
        regions: 5,
        seed: 5,
    };
    let events = common::sample::deliver(
        &common::sample::events_from(&shape, common::instant::Micros(now - month), month / 300),
        6,
    );
    let stream = Stream {
        messages: events
            .iter()
            .map(|e| {
                (
                    Some(e.record_id.clone().into_bytes()),
                    serde_json::to_vec(&e.to_json()).unwrap(),
                )
            })
            .collect(),
        events,
    };
    stream.publish(&broker, &topic, 0..stream.messages.len());
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start(&broker, &topic, &dir.path().join("data"), &[]);
    tracker.wait_consumed(stream.messages.len() as u64, WAIT);
    let base = format!("http://127.0.0.1:{}", tracker.port);

    let driver = Driver::start();
    let c = driver.client().await;

    // A 1280×800 viewport (the window adds its own frame).
    c.goto(&format!("{base}/")).await.unwrap();
    let frame = js(
        &c,
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]",
    )
    .await;
    let (fw, fh) = (
        frame[0].as_u64().unwrap() as u32,
        frame[1].as_u64().unwrap() as u32,
    );
    c.set_window_size(1280 + fw, 800 + fh).await.unwrap();
    let viewport = js(&c, "return [window.innerWidth, window.innerHeight]").await;
    assert_eq!(viewport, json!([1280, 800]));

    // Signing in shows the readable projects, the first one open.
    c.wait().for_element(Locator::Css("#token")).await.unwrap();
    // Present is not yet typeable: on a loaded machine the page may still
    // be laying the form out (seen once: "element not interactable").
    until(
        &c,
        "the sign-in form",
        Duration::from_secs(10),
        "const t = document.querySelector('#token'); \
         return !!t && !t.disabled && t.getClientRects().length > 0",
    )
    .await;
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(OPERATOR_TOKEN)
        .await
        .unwrap();
    click(&c, "#signin-form button[type=submit]").await;
    let (_, projects) = tracker.get("/v1/projects", Some(OPERATOR_TOKEN));
    let options = until(
        &c,
        "the project picker",
        Duration::from_secs(10),
        "return [...document.querySelectorAll('#project option')].map(o => o.value)",
    )
    .await;
    assert_eq!(options, projects["projects"]);
    let project = projects["projects"][0].as_str().unwrap().to_owned();
    let list = format!("/v1/{project}/replication_records?sort=created_at:desc&with_count=true");

    // The table: the same ids, in the same order, as the API.
    let (want, body) = api_ids(&tracker, &format!("{list}&limit=100"));
    until_rows(&c, "the first page", &want).await;
    let range = js(&c, "return document.querySelector('#range').textContent").await;
    assert!(
        range
            .as_str()
            .unwrap()
            .ends_with(&format!("of {}", body["count"])),
        "{range}"
    );

    // A status reads the same on the tiles, the table and the filter
    // (the table showed `waiting_replicate` beside a `waiting replicate`
    // tile).
    let labels = js(
        &c,
        "return [...document.querySelectorAll('.tile .k, #rows .badge, #filters select[name=status] option')].map(e => e.textContent)",
    )
    .await;
    let labels: Vec<String> = serde_json::from_value(labels).unwrap();
    assert!(
        labels.iter().any(|l| l == "waiting replicate"),
        "{labels:?}"
    );
    assert!(labels.iter().all(|l| !l.contains('_')), "{labels:?}");

    // The tiles count what the summaries count, and a tile filters.
    let (_, sums) = tracker.get(
        &format!("/v1/{project}/replication_summaries?group_by=status"),
        Some(OPERATOR_TOKEN),
    );
    let fails = sums["summaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == "fail")
        .map_or(0, |s| s["count"].as_u64().unwrap());
    let tile = js(
        &c,
        "return document.querySelector('.tile[data-status=fail] .n').textContent",
    )
    .await;
    assert_eq!(tile, json!(fails.to_string()));
    click(&c, ".tile[data-status=fail]").await;
    let (want, _) = api_ids(&tracker, &format!("{list}&limit=100&status=fail"));
    assert!(!want.is_empty());
    until_rows(&c, "the fail tile", &want).await;
    click(&c, ".tile[data-status=all]").await;

    // A form filter and a column sort give what the API gives for them.
    c.find(Locator::Css("#filters input[name=source_region]"))
        .await
        .unwrap()
        .send_keys("region-1")
        .await
        .unwrap();
    click(&c, "#filters button[type=submit]").await;
    let (want, _) = api_ids(
        &tracker,
        &format!("{list}&limit=100&source_region=region-1"),
    );
    assert!(!want.is_empty());
    until_rows(&c, "source_region=region-1", &want).await;
    click(&c, "th[data-sort=updated_at]").await;
    let (want, _) = api_ids(
        &tracker,
        &format!("/v1/{project}/replication_records?sort=updated_at:desc&limit=100&source_region=region-1"),
    );
    until_rows(&c, "sorted by updated_at", &want).await;
    click(&c, "th[data-sort=updated_at]").await;
    let (want, _) = api_ids(
        &tracker,
        &format!("/v1/{project}/replication_records?sort=updated_at:asc&limit=100&source_region=region-1"),
    );
    until_rows(&c, "sorted by updated_at ascending", &want).await;
    click(&c, "th[data-sort=created_at]").await;
    click(&c, "#filters button[type=reset]").await;
    let (want, _) = api_ids(&tracker, &format!("{list}&limit=100"));
    until_rows(&c, "filters cleared", &want).await;

    // Paging: 20 rows, next (a marker), previous; the second page is also
    // what offset=20 gives.
    js(
        &c,
        "document.querySelector('#filters select[name=limit]').value = '20'",
    )
    .await;
    click(&c, "#filters button[type=submit]").await;
    let (page1, body) = api_ids(&tracker, &format!("{list}&limit=20"));
    until_rows(&c, "page 1", &page1).await;
    click(&c, "#next").await;
    let marker = body["next_marker"].as_str().unwrap();
    let (page2, _) = api_ids(&tracker, &format!("{list}&limit=20&marker={marker}"));
    assert_eq!(
        page2,
        api_ids(&tracker, &format!("{list}&limit=20&offset=20")).0
    );
    until_rows(&c, "page 2", &page2).await;
    click(&c, "#prev").await;
    until_rows(&c, "back to page 1", &page1).await;
    // Going to a page by number is an offset.
    js(&c, "const p = document.querySelector('#page'); p.value = '2'; p.dispatchEvent(new Event('change'))").await;
    until_rows(&c, "page 2 by number", &page2).await;
    click(&c, "#first").await;
    until_rows(&c, "the first page again", &page1).await;

    // Live: an event published to the broker shows in the open page.
    until(
        &c,
        "the live indicator",
        Duration::from_secs(10),
        "return document.querySelector('#live.on')?.textContent",
    )
    .await;
    let id = "browser-live-record";
    // The record's first event, and its i-th progress event i seconds later.
    let now_micros = now;
    let at = |i: i64| {
        format!(
            "{}Z",
            common::instant::Micros(now + 60_000_000 + i * 1_000_000).render()
        )
    };
    let now = at(0);
    let event = json!({
        "schema_version": 1, "event_id": "live-1", "type": "queued", "record_id": id,
        "occurred_at": now,
        "record": {"source_region": "region-1", "source_project_id": project,
                   "destination_region": "\u{202e}evil", "destination_project_id": project},
    });
    let published = Instant::now();
    ingest::publish::publish(
        &broker.bootstrap(),
        &topic,
        &[(Some(id.as_bytes().to_vec()), event.to_string().into_bytes())],
    )
    .unwrap();
    until(
        &c,
        "the published record in the table",
        Duration::from_secs(2),
        &format!("return document.querySelector('#rows tr[data-id=\"{id}\"]') !== null"),
    )
    .await;
    let shown_after = published.elapsed();
    assert!(shown_after <= Duration::from_secs(2), "{shown_after:?}");
    // A right-to-left override in its region is shown, not obeyed (it
    // displayed `evil` as `live`).
    let region = js(
        &c,
        &format!("return document.querySelector('#rows tr[data-id=\"{id}\"] td:nth-child(4)').textContent"),
    )
    .await;
    assert_eq!(region, json!("⟨U+202E⟩evil"));
    println!("live: a published event showed in the page after {shown_after:?}");

    // The first render of a page of rows, after the list answered.
    let renders = js(
        &c,
        "return performance.getEntriesByName('rows-rendered').map(e => e.duration)",
    )
    .await;
    let worst = renders
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .fold(0.0, f64::max);
    println!(
        "render: {} list renders, the slowest {worst:.1} ms from the answer to the first paint",
        renders.as_array().unwrap().len()
    );

    if let Ok(path) = std::env::var("TRACKER_SCREENSHOT") {
        js(
            &c,
            "window.scrollTo(0, 0); document.querySelector('.table-wrap').scrollLeft = 0",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
    }

    // A long trail, so the drawer pages it: 130 progress events after the
    // record's first (the API's page is 100).
    let progress: Vec<(Option<Vec<u8>>, Vec<u8>)> = (1..=130)
        .map(|i| {
            let e = json!({
                "schema_version": 1, "event_id": format!("live-progress-{i}"),
                "type": "progress", "record_id": id, "occurred_at": at(i), "progress": i % 100,
            });
            (Some(id.as_bytes().to_vec()), e.to_string().into_bytes())
        })
        .collect();
    ingest::publish::publish(&broker.bootstrap(), &topic, &progress).unwrap();
    tracker.wait_consumed((stream.messages.len() + 1 + progress.len()) as u64, WAIT);

    // The drawer shows the record's events as the API has them, a page at
    // a time.
    click(&c, &format!("#rows tr[data-id=\"{id}\"]")).await;
    until(
        &c,
        "the drawer",
        Duration::from_secs(5),
        "return !document.querySelector('#drawer').hidden",
    )
    .await;
    let (_, events) = tracker.get(
        &format!("/v1/{project}/replication_records/{id}/events"),
        Some(OPERATOR_TOKEN),
    );
    let shown = until(
        &c,
        "the drawer's events",
        Duration::from_secs(5),
        "return [...document.querySelectorAll('#drawer-events li')].map(li => li.textContent)",
    )
    .await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 100, "the API's default page");
    assert_eq!(shown.as_array().unwrap().len(), events.len());
    let first = shown[0].as_str().unwrap();
    let e = &events[0];
    // The event's coordinates, its effect and the event itself.
    for part in [
        format!(
            "{}/{}@{}",
            e["topic"].as_str().unwrap(),
            e["partition"],
            e["offset"]
        ),
        e["effect"].as_str().unwrap().to_owned(),
        "\"type\": \"queued\"".to_owned(),
    ] {
        assert!(first.contains(&part), "{part} not in {first}");
    }
    // "More events" brings the rest, after the first page, then goes.
    let more = "return !document.querySelector('#more-events').hidden";
    assert_eq!(js(&c, more).await, json!(true), "no button for the rest");
    click(&c, "#more-events").await;
    let all = until(
        &c,
        "the drawer's second page",
        Duration::from_secs(5),
        "const lis = [...document.querySelectorAll('#drawer-events li')]; \
         return lis.length > 100 ? lis.map(li => li.textContent) : null",
    )
    .await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 131);
    let last = all[130].as_str().unwrap();
    assert!(last.contains("live-progress-130"), "{last}");
    assert_eq!(
        js(&c, more).await,
        json!(false),
        "the button outlived the trail"
    );

    // As of a time between its events, the drawer shows the record as the
    // API folds it then, and the events before it.
    let as_of = common::instant::Micros(now_micros + 60_000_000 + 65_500_000).render();
    let input = c.find(Locator::Css("#as-of")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(&as_of).await.unwrap();
    click(&c, "#as-of-form button[type=submit]").await;
    let shown = until(
        &c,
        "the record as of a time",
        Duration::from_secs(5),
        "const p = document.querySelector('#as-of-shown'); \
         return p.hidden ? null : [p.textContent, document.querySelector('dd[data-field=progress]').textContent, \
         document.querySelectorAll('#drawer-events li').length]",
    )
    .await;
    let (_, then) = tracker.get(
        &format!("/v1/{project}/replication_records/{id}?as_of={as_of}"),
        Some(OPERATOR_TOKEN),
    );
    let progress = then["replication_record"]["extra_info"]["progress"].clone();
    assert_eq!(progress, json!(65), "{then}");
    assert_eq!(shown[1], json!(progress.to_string()), "{shown}");
    assert_eq!(shown[2], json!(66), "{shown}");
    assert!(shown[0].as_str().unwrap().contains(&as_of), "{shown}");
    click(&c, "#as-of-now").await;
    until(
        &c,
        "the record now",
        Duration::from_secs(5),
        "return document.querySelector('#as-of-shown').hidden || null",
    )
    .await;
    click(&c, "#close").await;

    // The export button saves what the filters select, and says how many.
    let (_, listed) = tracker.get(
        &format!("/v1/{project}/replication_records?limit=1&with_count=true"),
        Some(OPERATOR_TOKEN),
    );
    for format in ["csv", "ndjson"] {
        js(
            &c,
            &format!("document.querySelector('#export-format').value = '{format}'; return null"),
        )
        .await;
        click(&c, "#export").await;
        let said = until(
            &c,
            "the export's summary",
            Duration::from_secs(10),
            "const s = document.querySelector('#export-status').textContent; \
             return s.startsWith('exported') ? s : null",
        )
        .await;
        assert_eq!(
            said,
            json!(format!("exported {} records ({format})", listed["count"])),
        );
        js(
            &c,
            "document.querySelector('#export-status').textContent = ''; return null",
        )
        .await;
    }

    // Usable on a phone: nothing wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    let overflow = js(
        &c,
        "return document.documentElement.scrollWidth - window.innerWidth",
    )
    .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is {overflow} px too wide at 390 px"
    );
    c.set_window_size(1280 + fw, 800 + fh).await.unwrap();

    // No console errors so far.
    let errors: Vec<Value> = driver
        .console(&c)
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // A wrong token: the API's own 401 words.
    click(&c, "#signout").await;
    let input = c.find(Locator::Css("#token")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys("not-a-token").await.unwrap();
    click(&c, "#signin-form button[type=submit]").await;
    let (status, body) = tracker.get("/v1/projects", Some("not-a-token"));
    assert_eq!(status, 401);
    let shown = until(
        &c,
        "the error",
        Duration::from_secs(5),
        "const e = document.querySelector('#error'); return e.hidden ? null : e.textContent",
    )
    .await;
    assert_eq!(
        shown,
        json!(format!(
            "{}: {}",
            body["error_code"].as_str().unwrap(),
            body["error_msg"].as_str().unwrap()
        ))
    );
    c.close().await.unwrap();
}

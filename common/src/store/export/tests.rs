use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::event::Event;
use crate::store::tests::{arb_event, arb_query, messages};
use crate::store::Store;
use crate::testkit;

/// A JSON record flattened as CSV lays it out: nested objects' keys joined
/// by `.`, `null` an empty field — the reference the CSV rows are held to.
fn flattened(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flattened(v, &key, out);
            }
        }
        Value::Null => out.push((prefix.to_owned(), String::new())),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

fn exported(
    store: &Store,
    project: &str,
    q: &ListQuery,
    format: ExportFormat,
) -> (Vec<u8>, ExportTrailer) {
    store
        .export_source()
        .unwrap()
        .export(project, q, format, Vec::new(), |_| Ok(()))
        .unwrap()
}

fn store_of(events: Vec<Event>) -> (Vec<Event>, Store) {
    let mut seen = std::collections::HashSet::new();
    let events: Vec<Event> = events
        .into_iter()
        .filter(|e| seen.insert((e.record_id.clone(), e.event_id.clone())))
        .collect();
    let store = Store::temporary().unwrap();
    store.apply_batch(&messages(&events)).unwrap();
    (events, store)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The NDJSON export is the list's pages concatenated (the reference's
    /// whole list, for any filters and sort, across many export pages),
    /// then a trailer whose count and SHA-256 are those of the record
    /// lines; the CSV export holds the same records, each row the record's
    /// JSON flattened.
    #[test]
    fn export_equals_the_whole_list_in_both_formats(
        events in proptest::collection::vec(arb_event(), 0..80),
        queries in proptest::collection::vec(arb_query(), 1..6),
    ) {
        let (events, store) = store_of(events);
        for (project, q) in queries {
            let whole = ListQuery { marker: None, offset: None, with_count: None, limit: Some(usize::MAX), ..q.clone() };
            let want = testkit::reference::list(&testkit::reference::fold_events(&events), &project, &whole).records;

            let (ndjson, trailer) = exported(&store, &project, &q, ExportFormat::Ndjson);
            let text = String::from_utf8(ndjson).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let (last, records) = lines.split_last().unwrap();
            let have: Vec<Record> = records.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
            prop_assert_eq!(&have, &want, "{:?} in {}", q, project);
            let line: TrailerLine = serde_json::from_str(last).unwrap();
            prop_assert_eq!(&line.export, &trailer);
            prop_assert_eq!(trailer.records, want.len() as u64);
            let body = &text[..text.len() - last.len() - 1];
            prop_assert_eq!(&trailer.sha256, &hex::encode(Sha256::digest(body.as_bytes())));

            let (csv_bytes, csv_trailer) = exported(&store, &project, &q, ExportFormat::Csv);
            prop_assert_eq!(&csv_trailer, &trailer);
            let mut rd = csv::Reader::from_reader(&csv_bytes[..]);
            prop_assert_eq!(rd.headers().unwrap().iter().collect::<Vec<_>>(), CSV_COLUMNS.to_vec());
            let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
            prop_assert_eq!(rows.len(), want.len());
            for (row, r) in rows.iter().zip(&want) {
                let mut flat = Vec::new();
                flattened(&serde_json::to_value(r).unwrap(), "", &mut flat);
                let cols: Vec<&str> = flat.iter().map(|(k, _)| k.as_str()).collect();
                prop_assert_eq!(cols, CSV_COLUMNS.to_vec());
                let vals: Vec<&str> = flat.iter().map(|(_, v)| v.as_str()).collect();
                prop_assert_eq!(row.iter().collect::<Vec<_>>(), vals);
            }
        }
    }
}

/// Values CSV must quote (commas, quotes, line breaks, a leading space)
/// come back as written.
#[test]
fn csv_quotes_what_it_must() {
    let awkward = "a, \"b\"\r\nc ";
    let store = Store::temporary().unwrap();
    let raw = format!(
        r#"{{"schema_version":1,"event_id":"e1","type":"failed","record_id":"r1","occurred_at":"2024-05-01T00:00:00Z","fail_code":"E1","fail_reason":{},"record":{{"source_project_id":"p","plan_id":{}}}}}"#,
        serde_json::to_string(awkward).unwrap(),
        serde_json::to_string(awkward).unwrap()
    );
    store
        .apply_batch(&[crate::Message {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: Some(b"r1".to_vec()),
            payload: Some(raw.into_bytes()),
        }])
        .unwrap();
    let (bytes, t) = exported(&store, "p", &ListQuery::default(), ExportFormat::Csv);
    assert_eq!(t.records, 1);
    let mut rd = csv::Reader::from_reader(&bytes[..]);
    let row = rd.records().next().unwrap().unwrap();
    assert_eq!(&row[10], awkward);
    assert_eq!(&row[15], awkward);
}

/// The trailer names the version read: the topic and each partition's
/// next offset, as the store's checkpoints hold them.
#[test]
fn the_trailer_names_the_offsets_read() {
    let events = crate::sample::events(&crate::sample::Shape {
        records: 20,
        projects: 1,
        regions: 2,
        seed: 5,
    });
    let store = Store::temporary().unwrap();
    store.apply_batch(&testkit::messages(&events, 0)).unwrap();
    let (_, t) = exported(
        &store,
        &crate::sample::project_id(0),
        &ListQuery::default(),
        ExportFormat::Ndjson,
    );
    let want: Vec<ExportOffset> = store
        .checkpoints()
        .iter()
        .map(|((_, p), n)| ExportOffset {
            partition: *p,
            next_offset: *n,
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(t.offsets, want);
    assert_eq!(t.topic, store.topic().unwrap());
}

/// A writer that fails part-way (a client gone) stops the export with its
/// error, and every thread of the export ends (no hang, nothing after).
#[test]
fn a_failing_writer_stops_the_export_with_its_error() {
    struct FailsAfter(usize);
    impl Write for FailsAfter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 < b.len() {
                return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let events = crate::sample::events(&crate::sample::Shape {
        records: 200,
        projects: 1,
        regions: 2,
        seed: 4,
    });
    let store = Store::temporary().unwrap();
    store.apply_batch(&testkit::messages(&events, 0)).unwrap();
    let source = store.export_source().unwrap();
    let project = crate::sample::project_id(0);
    for format in ExportFormat::ALL {
        let r = source.export(
            &project,
            &ListQuery::default(),
            format,
            FailsAfter(2000),
            |_| Ok(()),
        );
        assert!(
            matches!(r, Err(ExportError::Write(ref e)) if e.to_string() == "gone"),
            "{format:?}"
        );
        let mut ticks = 0;
        let r = source.export(&project, &ListQuery::default(), format, Vec::new(), |_| {
            ticks += 1;
            match ticks {
                5 => Err(std::io::Error::other("stopped")),
                _ => Ok(()),
            }
        });
        assert!(
            matches!(r, Err(ExportError::Write(ref e)) if e.to_string() == "stopped"),
            "{format:?}"
        );
        assert_eq!(ticks, 5);
    }
}

/// Hundreds of pages, read by the workers in turn, come out in the list's
/// order, for several sorts.
#[test]
fn a_long_export_keeps_the_lists_order_across_many_pages() {
    let events = crate::sample::events(&crate::sample::Shape {
        records: 300,
        projects: 1,
        regions: 3,
        seed: 8,
    });
    let store = Store::temporary().unwrap();
    store.apply_batch(&testkit::messages(&events, 0)).unwrap();
    let folded = testkit::reference::fold_events(&events);
    let project = crate::sample::project_id(0);
    for sort in ["created_at", "id", "updated_at", "status"] {
        let q = ListQuery {
            sort: Some(vec![crate::store::SortKey {
                field: crate::store::SortField::parse(sort).unwrap(),
                dir: crate::store::Dir::Asc,
            }]),
            ..Default::default()
        };
        let want = testkit::reference::list(
            &folded,
            &project,
            &ListQuery {
                limit: Some(usize::MAX),
                ..q.clone()
            },
        )
        .records;
        assert!(want.len() > 50 * EXPORT_PAGE, "{}", want.len());
        let (bytes, _) = exported(&store, &project, &q, ExportFormat::Ndjson);
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let have: Vec<Record> = lines[..lines.len() - 1]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(have == want, "{sort}: the export is not the list's order");
    }
}

//! Broker faults with librdkafka's mock cluster (in-process, fault injection):
//! request errors and a broker going down and coming back. Ingest must report
//! the state, never crash, and resume by itself without losing anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::types::RDKafkaApiKey;
use rdkafka::types::RDKafkaRespErr;
use tokio_util::sync::CancellationToken;

use common::progress::{BrokerState, IngestProgress};
use common::{sample, Store};
use ingest::embedded::EmbeddedBroker;
use ingest::{IngestConfig, Worker};

fn messages(records: usize, seed: u64) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    sample::events(&sample::Shape {
        records,
        projects: 2,
        regions: 3,
        seed,
    })
    .iter()
    .map(|e| {
        (
            Some(e.record_id.clone().into_bytes()),
            serde_json::to_vec(&e.to_json()).unwrap(),
        )
    })
    .collect()
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn consumed(store: &Store) -> u64 {
    let t = store.totals();
    t.applied + t.duplicates + t.quarantined
}

#[test]
fn ingest_survives_request_errors_and_a_broker_outage() {
    let broker = EmbeddedBroker::start("events", 2).unwrap();
    let bootstrap = broker.bootstrap_servers();
    let first = messages(40, 1);
    ingest::publish::publish(&bootstrap, "events", &first).unwrap();

    let store = Arc::new(Store::temporary().unwrap());
    let progress = Arc::new(IngestProgress::new("events"));
    let mut cfg = IngestConfig::new(&bootstrap, "events");
    cfg.metadata_interval = Duration::from_millis(200);
    cfg.max_batch = 16;
    let worker = Worker::new(cfg, store.clone(), progress.clone()).unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let handle = std::thread::spawn(move || worker.run(c));

    // Transient fetch errors: retried by librdkafka, nothing lost.
    broker.cluster().request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 4],
    );
    wait("the first stream", Duration::from_secs(60), || {
        consumed(&store) == first.len() as u64
    });
    assert_eq!(progress.snapshot().broker, BrokerState::Up);

    // The broker goes away: ingest reports it and keeps running.
    broker.cluster().broker_down(1).unwrap();
    wait("the outage to be noticed", Duration::from_secs(60), || {
        progress.snapshot().broker == BrokerState::Down
    });
    assert!(!handle.is_finished());
    // The projection stays readable meanwhile.
    let page = store
        .view()
        .list(&sample::project_id(0), &Default::default())
        .unwrap();
    assert!(!page.records.is_empty());

    // It comes back: ingest resumes without a restart.
    broker.cluster().broker_up(1).unwrap();
    let second = messages(30, 2);
    ingest::publish::publish(&bootstrap, "events", &second).unwrap();
    let total = (first.len() + second.len()) as u64;
    wait("the second stream", Duration::from_secs(90), || {
        consumed(&store) == total
    });
    wait("the broker to be up again", Duration::from_secs(30), || {
        progress.snapshot().broker == BrokerState::Up
    });
    assert_eq!(store.totals().applied, total);

    cancel.cancel();
    handle.join().unwrap().unwrap();
    store.assert_internally_consistent();
}

//! The domain of the replication tracker, with no Kafka and no HTTP: the event
//! contract and its validation ([`event`]), the identity fields both share
//! ([`identity`]), the pure fold into records
//! ([`record`]), the sled projection store with its secondary indexes, event
//! log, checkpoints, quarantine and list planner ([`store`]), the ingest
//! progress both services report ([`progress`]), and telemetry set-up. Tests
//! and the benchmark also get `testkit` (tests only): a reference fold written apart from
//! the real one, and streams built to break a wrong fold.

pub mod cluster;
pub mod event;
pub mod histogram;
pub mod identity;
pub mod instant;
pub mod lsm;
pub mod priority;
pub mod progress;
pub mod record;
pub mod sample;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod vocab;

pub use event::{decode, Event, EventType, Reject};
pub use instant::Micros;
pub use record::{fold_all, Record, RecordState, Status};
pub use store::{BatchOutcome, ListQuery, Message, Page, Store, StoreError};

//! Test support, compiled only for tests (`cfg(test)` or the `testkit`
//! feature that the other crates' tests and the benchmark turn on): an
//! independent reference fold and list ([`reference`]), a generator of event
//! streams that exercise every rule of the fold ([`adversarial`]), and the
//! table-driven specification of the fold (`common/tests/fold_spec.json`,
//! checked by the tests in [`spec`]), and a reader of the change feed's
//! server-sent events ([`sse`]), and the test broker's launcher ([`tansu`]).

pub mod adversarial;
pub mod reference;
#[cfg(test)]
mod spec;
pub mod sse;
pub mod tansu;

use crate::{Event, Message};

/// `events` as the messages a producer keyed by record id would publish to
/// partition 0 of topic `t`, at offsets `from..`: what tests apply.
pub fn messages(events: &[Event], from: usize) -> Vec<Message> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| Message {
            topic: "t".into(),
            partition: 0,
            offset: (from + i) as i64,
            key: Some(e.record_id.clone().into_bytes()),
            payload: Some(serde_json::to_vec(&e.to_json()).expect("an event serializes")),
        })
        .collect()
}

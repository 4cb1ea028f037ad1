//! Each input line is a message value. Decoding must never panic; the events
//! that decode, folded per record in input order and in reverse, must give
//! byte-identical state (the fold's convergence, under arbitrary input).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut by_record: BTreeMap<String, Vec<common::Event>> = BTreeMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(e) = common::decode(None, Some(line)) {
            let _ = common::RecordState::new(&e).view(&e.record_id);
            by_record.entry(e.record_id.clone()).or_default().push(e);
        }
    }
    for events in by_record.values() {
        // One event per event_id: the contract says an id names one event.
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<&common::Event> = events.iter().filter(|e| seen.insert(e.event_id.clone())).collect();
        let forward = common::fold_all(distinct.iter().copied()).unwrap();
        let backward = common::fold_all(distinct.iter().rev().copied()).unwrap();
        assert_eq!(forward.encode(), backward.encode());
        let decoded = common::RecordState::decode(&forward.encode()).unwrap();
        assert_eq!(decoded, forward);
    }
});

//! The list endpoint's query-string parser: never panics, and whatever it
//! accepts respects the contract's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    if let Ok(q) = query::params::parse_list(Some(&raw), &query::StuckPolicy::default()) {
        if let Some(limit) = q.limit {
            assert!((1..=1000).contains(&limit));
        }
        if let Some(sort) = &q.sort {
            assert!(!sort.is_empty());
        }
    }
    let _ = query::params::parse_page(Some(&raw), 1000);
});

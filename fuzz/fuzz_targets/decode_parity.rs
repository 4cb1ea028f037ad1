//! The input is one message value. The one-pass decoder must decode it
//! exactly as decoding through a `serde_json::Value` did (issue 36): the
//! same event, or the same reason.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        common::event::decode(None, Some(data)),
        common::event::decode_via_value(None, Some(data)),
        "{:?}",
        String::from_utf8_lossy(data)
    );
});

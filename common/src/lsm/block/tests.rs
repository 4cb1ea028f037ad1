//! Block formats read back what was written, and refuse what is damaged.

use super::*;
use crate::lsm::Entry;
use proptest::prelude::*;

/// Damaged block bytes are refused, never decoded into an entry that
/// a read would then panic on.
#[test]
fn an_overrunning_entry_or_an_empty_block_is_not_a_block() {
    let mut raw = Vec::new();
    entry::encode_into(&mut raw, b"key", EntryRef::Put(&[1; 100]));
    assert!(Arena::of_encoded(raw.clone()).is_some());
    raw.truncate(raw.len() - 1);
    assert!(Arena::of_encoded(raw).is_none(), "a value past the end");
    assert!(Arena::of_encoded(Vec::new()).is_none(), "an empty block");
    let z = codec::compress(b"", 1);
    assert!(matches!(read(b"R", &z), Err(LsmError::Corrupt { .. })));
    let mut empty = Builder::default();
    assert!(read(b"R", &empty.finish(1)).is_err(), "no frames");
    assert!(read(b"R", &[7, 1, 2, 3]).is_err(), "an unknown format");
    // A shared prefix that would make a key longer than a key can be
    // (its length would wrap to 0 in the block as read).
    let long = [b'k'; u16::MAX as usize];
    let mut raw = 0u16.to_be_bytes().to_vec();
    entry::encode_into(&mut raw, &long, EntryRef::Delete);
    raw.extend_from_slice(&u16::MAX.to_be_bytes());
    entry::encode_into(&mut raw, b"x", EntryRef::Delete);
    raw.extend_from_slice(&0u32.to_be_bytes());
    raw.extend_from_slice(&1u32.to_be_bytes());
    assert!(
        expand_into(&raw, &mut Arena::default()).is_none(),
        "a key past 64 KiB"
    );
}

/// Format 2's bytes, pinned: its code, the frame table (ends, first
/// keys' lengths), the first keys, then the frames. A change here is a
/// new block format, which older blocks must still read as.
#[test]
fn format_2_bytes_are_pinned() {
    let mut b = Builder::default();
    for (k, v) in [(&b"ka"[..], &b"1"[..]), (b"kb", b"22"), (b"kc", b"333")] {
        b.push(k, EntryRef::Put(v));
        if b.frame_bytes() >= 20 {
            b.cut_frame();
        }
    }
    let stored = b.finish(1);
    let firsts = frame_keys(b"R", &stored).unwrap().unwrap();
    assert_eq!(firsts.len(), 2);
    let head = 3 + 2 * FRAME_ROW + 4;
    let first_end = u32_at(&stored, 3).unwrap() as usize;
    let f0 = read_frame(b"R", &stored, 0).unwrap();
    assert_eq!((f0.len(), f0.key(1)), (2, &b"kb"[..]));
    assert_eq!(
        hex::encode(&stored[..head]),
        format!(
            "020002{first_end:08x}0002{:08x}00026b616b63",
            stored.len() - head
        )
    );
    assert_eq!(
        hex::encode(&stored[head..]),
        "28b52ffd2020010100000000026b61000000000131000100016200000000023232000000000000000128b52ffd\
         2016b10000000000026b6300000000033333330000000000000001"
    );
}

fn arb_block() -> impl Strategy<Value = Vec<(Vec<u8>, Entry)>> {
    let key = (0usize..70, proptest::collection::vec(0u8..3, 0..4))
        .prop_map(|(shared, tail)| [vec![b'k'; shared], tail].concat());
    let e = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Entry::Put),
        Just(Entry::Delete),
        any::<i64>().prop_map(Entry::Add),
        any::<i64>().prop_map(Entry::Count),
    ];
    proptest::collection::btree_map(key, e, 1..80).prop_map(|m| m.into_iter().collect())
}

proptest! {
    /// A block written in format 2, cut into frames of any size, reads
    /// back as the same entries as format 0 holds them, whole and frame
    /// by frame (a key's frame found by the frames' first keys, as a
    /// point read finds it); and blocks of formats 0 and 1 (layouts
    /// 6–17) still read.
    #[test]
    fn every_format_reads_back_the_entries_written(
        entries in arb_block(),
        frame_bytes in 1usize..400,
        fast in any::<bool>(),
    ) {
        let mut b = Builder::default();
        let mut whole = Vec::new();
        for (k, e) in &entries {
            b.push(k, e.as_ref());
            if b.frame_bytes() >= frame_bytes {
                b.cut_frame();
            }
            entry::encode_into(&mut whole, k, e.as_ref());
        }
        prop_assert_eq!(b.whole_bytes(), whole.len());
        let stored = b.finish(if fast { -3 } else { 1 });
        prop_assert!(b.is_empty());
        prop_assert_eq!(stored[0], FORMAT_FRAMED);
        let legacy = codec::compress(&whole, 1);
        let prefixed = as_format_1(b"R", &stored).unwrap();
        prop_assert_eq!(prefixed[0], FORMAT_PREFIXED);
        for block in [read(b"R", &stored).unwrap(), read(b"R", &legacy).unwrap(), read(b"R", &prefixed).unwrap()] {
            prop_assert_eq!(block.len(), entries.len());
            prop_assert_eq!(block.as_bytes(), &whole[..]);
            for (i, (k, e)) in entries.iter().enumerate() {
                prop_assert_eq!(block.key(i), k.as_slice());
                prop_assert_eq!(block.entry(i), e.as_ref());
                prop_assert_eq!(block.lower_bound(k), i);
            }
        }
        prop_assert!(frame_keys(b"R", &legacy).unwrap().is_none());
        prop_assert!(frame_keys(b"R", &prefixed).unwrap().is_none());
        let firsts = frame_keys(b"R", &stored).unwrap().unwrap();
        let cut_small = whole.len() > 2 * frame_bytes + 200;
        prop_assert!(!cut_small || firsts.len() > 1, "frames are cut");
        for (k, e) in &entries {
            let f = firsts.partition_point(|first| first <= k.as_slice()) - 1;
            let frame = read_frame(b"R", &stored, f).unwrap();
            let i = frame.lower_bound(k);
            prop_assert_eq!(frame.key(i), k.as_slice());
            prop_assert_eq!(frame.entry(i), e.as_ref());
        }
    }

    /// A block cut short or with a byte changed — its frame table, a
    /// first key, a frame's bytes as stored or as expanded — is refused
    /// or reads without a panic (sled's checksums catch what is torn on
    /// disk; this guards the decoder against its own bounds).
    #[test]
    fn a_damaged_block_is_refused_or_reads_without_a_panic(
        entries in arb_block(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
        expanded in any::<bool>(),
    ) {
        let mut b = Builder::default();
        for (k, e) in &entries {
            b.push(k, e.as_ref());
            if b.frame_bytes() >= 64 {
                b.cut_frame();
            }
        }
        let mut damaged = if expanded {
            // One frame's bytes as its expansion reads them.
            b.frame.finish()
        } else {
            b.finish(1)
        };
        let i = at.index(damaged.len());
        if cut {
            damaged.truncate(i);
        } else {
            damaged[i] = byte;
        }
        if expanded {
            let mut block = Arena::default();
            if expand_into(&damaged, &mut block).is_some() {
                for i in 0..block.len() {
                    let _ = (block.key(i), block.entry(i));
                }
            }
        } else {
            if let Ok(block) = read(b"R", &damaged) {
                for i in 0..block.len() {
                    let _ = (block.key(i), block.entry(i));
                }
            }
            if let Ok(Some(firsts)) = frame_keys(b"R", &damaged) {
                for f in 0..firsts.len() + 1 {
                    let _ = read_frame(b"R", &damaged, f);
                }
            }
        }
    }
}

//! Values split into keys of at most [`CHUNK_BYTES`]: sled 0.34.7 stores a
//! value past ~128 KiB as a blob file of its own, which it never fsyncs
//! (`pagecache/blob_io.rs`), so after a power loss its log may name a blob
//! that is not there. A large run's metadata (and, in layouts 6 and 7, a
//! batch log) is written as parts `key ++ part` (u32, big-endian) in the
//! caller's one atomic batch instead, each inline in sled's log.
//!
//! Every chunked key is of fixed length (a space byte and a u64), so the
//! parts of one value are exactly the keys under its prefix. A value
//! written whole by an earlier build (the bare key) reads as its only part.

pub const CHUNK_BYTES: usize = 96 << 10;

/// The key of part `i` of the value under `key`.
fn part(key: &[u8], i: u32) -> Vec<u8> {
    [key, &i.to_be_bytes()].concat()
}

/// Adds the value's parts to `batch`.
pub fn put(batch: &mut sled::Batch, key: &[u8], value: &[u8]) {
    if value.is_empty() {
        batch.insert(part(key, 0), Vec::new());
    }
    for (i, c) in value.chunks(CHUNK_BYTES).enumerate() {
        batch.insert(part(key, i as u32), c);
    }
}

/// The value under `key`, its parts joined; `None` when there is none.
pub fn get(tree: &sled::Tree, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
    let mut out: Option<Vec<u8>> = None;
    for kv in tree.scan_prefix(key) {
        let (_, v) = kv?;
        out.get_or_insert_with(Vec::new).extend_from_slice(&v);
    }
    Ok(out)
}

/// Every chunked value in `space` (keys of `space` and a u64), in key
/// order: the base key and the joined parts (tests: the engine reads
/// only the parts of values it knows).
#[cfg(test)]
pub fn scan(
    tree: &sled::Tree,
    space: u8,
) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), sled::Error>> + '_ {
    let mut parts = tree.scan_prefix([space]).peekable();
    std::iter::from_fn(move || {
        let (k, v) = match parts.next()? {
            Ok(kv) => kv,
            Err(e) => return Some(Err(e)),
        };
        let base = k[..k.len().min(9)].to_vec();
        let mut value = v.to_vec();
        while let Some(Ok((next, _))) = parts.peek() {
            if !next.starts_with(&base) {
                break;
            }
            let Some(Ok((_, v))) = parts.next() else {
                unreachable!("peeked")
            };
            value.extend_from_slice(&v);
        }
        Some(Ok((base, value)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_reads_back_whole_from_parts_each_below_the_blob_threshold() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut batch = sled::Batch::default();
        put(&mut batch, b"L\0\0\0\0\0\0\0\x01", &big);
        put(&mut batch, b"L\0\0\0\0\0\0\0\x02", b"small");
        put(&mut batch, b"L\0\0\0\0\0\0\0\x03", b"");
        tree.apply_batch(batch).unwrap();
        // An earlier build's whole value.
        tree.insert(b"L\0\0\0\0\0\0\0\x04", b"old".to_vec())
            .unwrap();
        assert!(tree
            .iter()
            .values()
            .all(|v| v.unwrap().len() <= CHUNK_BYTES));
        assert_eq!(
            get(&tree, b"L\0\0\0\0\0\0\0\x01").unwrap(),
            Some(big.clone())
        );
        let all: Vec<_> = scan(&tree, b'L').map(Result::unwrap).collect();
        let values: Vec<&[u8]> = all.iter().map(|(_, v)| v.as_slice()).collect();
        assert_eq!(values, [&big[..], b"small", b"", b"old"]);
    }
}

//! Sorting a batch's operations by key: a stable MSD radix sort that skips
//! the bytes all keys of a bucket share. The store's keys share 40–60
//! leading bytes (keyspace, field, project, value), which a comparison sort
//! compares again on every one of its n·log n comparisons; here each shared
//! byte is read about once per key.

/// Below this many keys a bucket is finished by insertion sort.
const SMALL: usize = 24;
/// Past this many levels a bucket is finished by a comparison sort: keys
/// that are prefixes of one another (`a`, `aa`, `aaa`, …) split one key
/// off per level, and a level holds ~6 KiB of stack.
const LEVELS: usize = 32;

/// The positions `0..n` ordered by `key(i)`; equal keys keep their order.
pub fn sorted<'a>(n: usize, key: impl Fn(u32) -> &'a [u8] + Copy) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    let mut scratch = vec![0u32; n];
    msd(&mut idx, &mut scratch, 0, 0, key);
    idx
}

fn msd<'a>(
    idx: &mut [u32],
    scratch: &mut [u32],
    depth: usize,
    level: usize,
    key: impl Fn(u32) -> &'a [u8] + Copy,
) {
    if idx.len() <= SMALL {
        insertion(idx, depth, key);
        return;
    }
    if level == LEVELS {
        // Stable: equal keys keep their order.
        idx.sort_by(|&a, &b| tail(key(a), depth).cmp(tail(key(b), depth)));
        return;
    }
    let depth = depth + shared(idx, depth, key);
    // Bucket 0: keys that end here (they sort first); 1 + b: byte b next.
    let bucket = |i: u32| key(i).get(depth).map_or(0, |&b| b as usize + 1);
    let mut counts = [0usize; 257];
    for &i in idx.iter() {
        counts[bucket(i)] += 1;
    }
    let mut starts = [0usize; 257];
    let mut sum = 0;
    for (s, c) in starts.iter_mut().zip(counts) {
        *s = sum;
        sum += c;
    }
    let mut at = starts;
    for &i in idx.iter() {
        let b = bucket(i);
        scratch[at[b]] = i;
        at[b] += 1;
    }
    idx.copy_from_slice(&scratch[..idx.len()]);
    // Keys that ended here are equal, already in their given order.
    for b in 1..257 {
        let (lo, hi) = (starts[b], starts[b] + counts[b]);
        if hi - lo > 1 {
            msd(
                &mut idx[lo..hi],
                &mut scratch[lo..hi],
                depth + 1,
                level + 1,
                key,
            );
        }
    }
}

/// How many bytes from `depth` on every key of the bucket shares.
fn shared<'a>(idx: &[u32], depth: usize, key: impl Fn(u32) -> &'a [u8]) -> usize {
    let first = &key(idx[0])[depth.min(key(idx[0]).len())..];
    let mut n = first.len();
    for &i in &idx[1..] {
        let k = key(i);
        let k = &k[depth.min(k.len())..];
        n = n.min(common_prefix(&first[..n], k));
        if n == 0 {
            break;
        }
    }
    n
}

/// `k` from `depth` on (empty past its end).
fn tail(k: &[u8], depth: usize) -> &[u8] {
    &k[depth.min(k.len())..]
}

/// The length of the longest common prefix, eight bytes at a time.
pub(super) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_ne_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_ne_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            break;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Stable: a key moves only past keys strictly greater than it.
fn insertion<'a>(idx: &mut [u32], depth: usize, key: impl Fn(u32) -> &'a [u8]) {
    for j in 1..idx.len() {
        let v = idx[j];
        let kv = &key(v)[depth.min(key(v).len())..];
        let mut i = j;
        while i > 0 {
            let ku = key(idx[i - 1]);
            if &ku[depth.min(ku.len())..] <= kv {
                break;
            }
            idx[i] = idx[i - 1];
            i -= 1;
        }
        idx[i] = v;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest::proptest! {
        /// The radix order equals a stable comparison sort's, ties in the
        /// order given, on keys with long shared prefixes, prefixes of one
        /// another and duplicates.
        #[test]
        fn the_radix_order_equals_a_stable_sort(
            keys in proptest::collection::vec(
                (0usize..40, proptest::collection::vec(0u8..4, 0..6)),
                0..300,
            ),
        ) {
            let keys: Vec<Vec<u8>> = keys
                .into_iter()
                .map(|(shared, tail)| [vec![9u8; shared], tail].concat())
                .collect();
            let got = super::sorted(keys.len(), |i| keys[i as usize].as_slice());
            let mut want: Vec<u32> = (0..keys.len() as u32).collect();
            want.sort_by(|a, b| keys[*a as usize].cmp(&keys[*b as usize]));
            prop_assert_eq!(got, want);
        }
    }

    /// Keys that are prefixes of one another split one key off per level:
    /// thousands of them still sort, in bounded depth (this overflowed the
    /// stack at about 350 keys before the depth bound).
    #[test]
    fn keys_that_are_prefixes_of_one_another_sort_in_bounded_depth() {
        let keys: Vec<Vec<u8>> = (0..5000).rev().map(|n| vec![b'a'; n]).collect();
        let got = super::sorted(keys.len(), |i| keys[i as usize].as_slice());
        let want: Vec<u32> = (0..5000u32).rev().collect();
        assert_eq!(got, want);
    }
}

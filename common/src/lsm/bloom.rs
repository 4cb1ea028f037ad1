//! A Bloom filter per run, over the keys a point read asks for (records by
//! id), so that a read skips the runs that cannot hold its key and touches
//! at most one block in each run that may. The hash is written here (FNV-1a
//! then a 64-bit finaliser), not taken from `std`, because filters are
//! stored and must mean the same thing to every later build.

use serde::{Deserialize, Serialize};

/// Bits per key: about 0.02 % false positives with 7 probes. Nearly every
/// record a batch folds is new, so each of its lookups asks every run: at
/// 10 bits (1 %) the false positives' block reads cost the fold 1-3 µs per
/// event at 1M records (docs/benchmarks.md, "The lean write path"). 2.5
/// MB per million records.
const BITS_PER_KEY: usize = 20;
/// Part of the stored format (a filter is read with the probes it was
/// written with): never change.
const PROBES: u32 = 7;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bloom {
    bits: Vec<u64>,
}

pub fn hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64's finaliser: FNV alone leaves the high bits weak.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl Bloom {
    pub fn new(keys: usize) -> Bloom {
        Bloom {
            bits: vec![0; (keys * BITS_PER_KEY).div_ceil(64).max(1)],
        }
    }

    /// A filter of the keys whose [`hash`]es these are, sized on them.
    pub fn of_hashes(hashes: &[u64]) -> Bloom {
        let mut b = Bloom::new(hashes.len());
        for &h in hashes {
            b.insert_hash(h);
        }
        b
    }

    #[cfg(test)]
    pub fn insert(&mut self, key: &[u8]) {
        self.insert_hash(hash(key));
    }

    fn insert_hash(&mut self, h: u64) {
        for p in probes(h, self.bits.len() as u64 * 64) {
            self.bits[p / 64] |= 1 << (p % 64);
        }
    }

    /// Its size in memory (and, about, stored).
    pub fn bytes(&self) -> usize {
        self.bits.len() * 8
    }

    /// False: the key is certainly not in the run.
    #[cfg(test)]
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(hash(key))
    }

    /// [`Bloom::may_contain`] of the key whose [`hash`] this is: a point
    /// read hashes its key once for every slice's and run's filter.
    pub fn may_contain_hash(&self, h: u64) -> bool {
        probes(h, self.bits.len() as u64 * 64).all(|p| self.bits[p / 64] & (1 << (p % 64)) != 0)
    }
}

/// The `PROBES` bit positions of hash `h` in a filter of `n` bits: double
/// hashing over its two 32-bit halves.
fn probes(h: u64, n: u64) -> impl Iterator<Item = usize> {
    let (a, b) = (h as u32 as u64, (h >> 32) | 1);
    (0..PROBES as u64).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % n) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_every_key_inserted_and_few_others() {
        let mut b = Bloom::new(10_000);
        for i in 0..10_000u32 {
            b.insert(format!("record-{i}").as_bytes());
        }
        assert!((0..10_000u32).all(|i| b.may_contain(format!("record-{i}").as_bytes())));
        let false_positives = (0..10_000u32)
            .filter(|i| b.may_contain(format!("other-{i}").as_bytes()))
            .count();
        assert!(false_positives < 20, "{false_positives} of 10,000");
    }

    /// The hash is part of the stored format: pinned.
    #[test]
    fn the_hash_is_stable() {
        assert_eq!(hash(b""), 17_665_956_581_633_026_203);
        assert_eq!(hash(b"record"), hash(b"record"));
    }
}

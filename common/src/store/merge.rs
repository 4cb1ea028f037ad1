//! The k-way merge of posting scans: disjoint lists, each sorted by
//! `(created_at, record number)`, read as one list in that order (or its
//! reverse). The heads are compared in place as key tails, whose bytes sort
//! like the pair; only the winner is decoded.

use super::keys;
use super::lists::EntryIter;
use super::query::Dir;
use super::StoreError;

pub struct Merge {
    /// Each source with the length of its list prefix.
    sources: Vec<(usize, EntryIter)>,
    heads: Vec<Option<(sled::IVec, sled::IVec)>>,
    dir: Dir,
    started: bool,
}

impl Merge {
    pub fn new(sources: Vec<(usize, EntryIter)>, dir: Dir) -> Merge {
        let heads = vec![None; sources.len()];
        Merge {
            sources,
            heads,
            dir,
            started: false,
        }
    }

    fn advance(&mut self, i: usize) -> Result<(), StoreError> {
        self.heads[i] = self.sources[i].1.next().transpose()?;
        Ok(())
    }
}

impl Iterator for Merge {
    type Item = Result<([u8; 8], u32), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                if let Err(e) = self.advance(i) {
                    return Some(Err(e));
                }
            }
        }
        let mut best: Option<usize> = None;
        for (i, head) in self.heads.iter().enumerate() {
            let Some((k, _)) = head else { continue };
            let better = best.is_none_or(|b| {
                let (t, bt) = (
                    &k[self.sources[i].0..],
                    &self.heads[b].as_ref().expect("head present").0[self.sources[b].0..],
                );
                match self.dir {
                    Dir::Asc => t < bt,
                    Dir::Desc => t > bt,
                }
            });
            if better {
                best = Some(i);
            }
        }
        let i = best?;
        let (key, _) = self.heads[i].take().expect("head present");
        if let Err(e) = self.advance(i) {
            return Some(Err(e));
        }
        Some(
            keys::read_instant_number(&key[self.sources[i].0..])
                .ok_or_else(|| StoreError::corrupt(&key, "bad posting key")),
        )
    }
}

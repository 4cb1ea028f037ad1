//! Filter tests: whether a candidate is in a posting list.
//!
//! A list that holds most of the project's records (`status=success`) is
//! tested on the candidate's record: most candidates pass and go on the
//! page, whose fetch then finds the record's frame in the cache, and a
//! record read is one run's (its key is in the runs' Bloom filters) where
//! a posting lookup searches every run.
//!
//! Any other list's test starts as point lookups, one engine read per
//! candidate; once a plan has spent on a list's lookups about what reading
//! the whole list costs, the list's record numbers are read once into a
//! set, and every later test of it is a hash probe — never more than about
//! twice the cheaper of the two, whatever the walk turns out to need (a
//! walk cannot know beforehand how many candidates it will test). Each
//! list's interned prefix and count are resolved once per plan.

use std::cell::{Cell, RefCell};

use fxhash::{FxHashMap, FxHashSet};

use super::*;

/// One point lookup costs about as much as reading this many entries of a
/// list in a scan (unit tests: 1, so small worlds take both paths).
const LOOKUP_IN_ENTRIES: u64 = if cfg!(test) { 1 } else { 32 };

/// The lists a plan has tested candidates against, and the project's
/// record count once known.
#[derive(Default)]
pub(super) struct Probes {
    lists: RefCell<FxHashMap<Posting, Probe>>,
    pub records: Cell<Option<u64>>,
}

/// One list's test.
struct Probe {
    prefix: Vec<u8>,
    /// Its entries (the project's count of its value).
    entries: u64,
    lookups: u64,
    /// Its record numbers, once read whole.
    numbers: Option<FxHashSet<u32>>,
    /// Tested on the records: the list holds most of the project's.
    by_record: bool,
}

impl Planner<'_> {
    /// Whether the record numbered `number`, created at `created`, is in
    /// the posting list `p` of the project.
    pub(super) fn in_posting(
        &self,
        p: &Posting,
        created: [u8; 8],
        number: u32,
    ) -> Result<bool, StoreError> {
        let mut probes = self.probes.lists.borrow_mut();
        if !probes.contains_key(p) {
            let entries = self.store.count(&p.count_key(self.project))?;
            let probe = Probe {
                prefix: self.store.list_prefix(&p.name(self.project)),
                entries,
                lookups: 0,
                numbers: None,
                by_record: entries.saturating_mul(2) >= self.project_records()?,
            };
            probes.insert(p.clone(), probe);
        }
        let probe = probes.get_mut(p).expect("inserted above");
        if probe.by_record {
            drop(probes);
            let (_, s) = self.store.row_of(number)?;
            return Ok(p.holds(&s));
        }
        if probe.numbers.is_none() && probe.lookups * LOOKUP_IN_ENTRIES >= probe.entries {
            let mut numbers = FxHashSet::default();
            numbers.reserve(probe.entries as usize);
            for kv in self.store.scan_list(&probe.prefix, Dir::Asc) {
                let (k, _) = kv?;
                let (_, n) = keys::read_instant_number(&k[probe.prefix.len()..])
                    .ok_or_else(|| StoreError::corrupt(&k, "bad posting entry"))?;
                numbers.insert(n);
            }
            probe.numbers = Some(numbers);
        }
        if let Some(numbers) = &probe.numbers {
            return Ok(numbers.contains(&number));
        }
        probe.lookups += 1;
        lists::contains(
            &self.store.snap(),
            &probe.prefix,
            &Posting::suffix(created, number),
        )
    }
}

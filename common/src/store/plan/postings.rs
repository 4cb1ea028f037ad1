//! The postings of a plan: which list drives a walk (the shortest, by its
//! count), filter tests by point lookup, merged streams in `(created_at,
//! number)` order, whole hours skipped by their counts, and counts of matches.

use super::*;

impl Planner<'_> {
    /// Gathering every match and sorting it beats walking a whole order when
    /// the filters leave few rows relative to the page depth.
    pub(super) fn gather_is_cheaper(&self, filters: &[Posting]) -> Result<bool, StoreError> {
        let (driver, _) = self.choose_driver(filters)?;
        let n = u128::from(self.union_count(&driver)?);
        let total = u128::from(self.project_records()?);
        let depth = self.page.depth() as u128;
        Ok(n <= 4 * depth || n * n <= depth * total)
    }

    /// The status postings of the project: together, every record listed there.
    pub(super) fn all_postings(&self) -> Result<Vec<Posting>, StoreError> {
        Ok(self
            .distinct_values(IndexField::Status)?
            .into_iter()
            .map(|v| Posting {
                field: IndexField::Status,
                value: v,
            })
            .collect())
    }

    /// Values of `field` present in the project, ascending (from the counts).
    pub(super) fn distinct_values(
        &self,
        field: IndexField,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let prefix = keys::field_counts(self.project, field);
        let mut values = Vec::new();
        for kv in lists::scan(&self.store.snap(), &prefix, true) {
            let (k, _) = kv?;
            values.push(count_value(&prefix, &k)?);
        }
        Ok(values)
    }

    /// The project's records: its status counts summed, read in one scan
    /// (once per plan).
    pub(super) fn project_records(&self) -> Result<u64, StoreError> {
        if let Some(n) = self.probes.records.get() {
            return Ok(n);
        }
        let prefix = keys::field_counts(self.project, IndexField::Status);
        let mut n = 0;
        for kv in lists::scan(&self.store.snap(), &prefix, true) {
            let (k, v) = kv?;
            n += keys::read_count(&v).ok_or_else(|| StoreError::corrupt(&k, "bad count"))?;
        }
        self.probes.records.set(Some(n));
        Ok(n)
    }

    pub(super) fn union_count(&self, postings: &[Posting]) -> Result<u64, StoreError> {
        postings
            .iter()
            .map(|p| self.store.count(&p.count_key(self.project)))
            .sum()
    }

    /// The entries of disjoint posting lists, merged in `(created_at,
    /// number)` order (or its reverse). `from`, when given, is a `created_at` bound:
    /// entries from it on (ascending) or strictly before it (descending).
    pub(super) fn stream(
        &self,
        postings: &[Posting],
        dir: Dir,
        from: Option<[u8; 8]>,
    ) -> Result<Merge, StoreError> {
        let sources = postings
            .iter()
            .map(|p| {
                let prefix = self.store.list_prefix(&p.name(self.project));
                let it = match from {
                    None => self.store.scan_list(&prefix, dir),
                    Some(b) => lists::scan_from(&self.store.snap(), &prefix, &b, dir == Dir::Asc),
                };
                Ok((prefix.len(), it))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Merge::new(sources, dir))
    }

    /// For a deep offset over status postings alone, skips whole hours by
    /// their counts and returns where the scan should start.
    pub(super) fn skip_hours(
        &mut self,
        driver: &[Posting],
        dir: Dir,
    ) -> Result<Option<[u8; 8]>, StoreError> {
        if self.page.skip() < HOUR_SKIP_MIN || driver.iter().any(|p| p.field != IndexField::Status)
        {
            return Ok(None);
        }
        let mut hours: BTreeMap<[u8; 8], u64> = BTreeMap::new();
        for p in driver {
            let prefix = self.store.hour_prefix(p, self.project);
            for kv in lists::scan(&self.store.snap(), &prefix, true) {
                let (k, v) = kv?;
                let hour = keys::read_hour(&k[prefix.len()..])
                    .ok_or_else(|| StoreError::corrupt(&k, "bad hour key"))?;
                let n = keys::read_count(&v).ok_or_else(|| StoreError::corrupt(&k, "bad count"))?;
                *hours.entry(hour).or_default() += n;
            }
        }
        let ordered: Box<dyn Iterator<Item = (&[u8; 8], &u64)>> = match dir {
            Dir::Asc => Box::new(hours.iter()),
            Dir::Desc => Box::new(hours.iter().rev()),
        };
        let mut last = None;
        for (hour, n) in ordered {
            if !self.page.skip_run(*n as usize) {
                break;
            }
            last = Some(*hour);
        }
        Ok(last.map(|h| match dir {
            Dir::Asc => Micros(Micros::from_key_bytes(h).0 + index::HOUR).key_bytes(),
            Dir::Desc => h,
        }))
    }

    /// The filter with the shortest posting list (as a one-list union) and
    /// the others; with no filter, every status list of the project.
    pub(super) fn choose_driver(
        &self,
        filters: &[Posting],
    ) -> Result<(Vec<Posting>, Vec<Posting>), StoreError> {
        let mut best: Option<(u64, usize)> = None;
        for (i, p) in filters.iter().enumerate() {
            let n = self.store.count(&p.count_key(self.project))?;
            if best.is_none_or(|(b, _)| n < b) {
                best = Some((n, i));
            }
        }
        Ok(match best {
            None => (self.all_postings()?, Vec::new()),
            Some((_, i)) => {
                let mut others = filters.to_vec();
                let driver = others.remove(i);
                (vec![driver], others)
            }
        })
    }

    pub(super) fn matches_all(
        &self,
        filters: &[Posting],
        created: [u8; 8],
        number: u32,
    ) -> Result<bool, StoreError> {
        for p in filters {
            if !self.in_posting(p, created, number)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Calls `f(created_at, number)` for every match in posting order (ties
    /// of `created_at` by number, not id), until it breaks.
    pub(super) fn for_each_match(
        &self,
        filters: &[Posting],
        dir: Dir,
        f: &mut dyn FnMut([u8; 8], u32) -> Step,
    ) -> Result<(), StoreError> {
        let (driver, others) = self.choose_driver(filters)?;
        let from = match dir {
            Dir::Asc => self.created.after,
            Dir::Desc => self.created.before,
        };
        for row in self.stream(&driver, dir, from.map(Micros::key_bytes))? {
            let (created, number) = row?;
            if self.created.passed(Micros::from_key_bytes(created), dir) {
                break;
            }
            if self.admits(&others, created, None, number)? && f(created, number)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The number of matches, ignoring offset, limit and marker. A window
    /// makes the counts of whole lists useless: its matches are counted.
    pub(super) fn count_matches(&mut self, filters: &[Posting]) -> Result<u64, StoreError> {
        match filters {
            _ if self.stuck.is_some_and(|k| !k.want) => {
                // Everything but the stuck ones: two cheap counts.
                let stuck = self.stuck.take().expect("checked");
                let all = self.count_matches(filters)?;
                self.stuck = Some(Stuck {
                    want: true,
                    ..stuck
                });
                let stuck_ones = self.count_stuck(filters)?;
                self.stuck = Some(stuck);
                Ok(all - stuck_ones)
            }
            _ if self.stuck.is_some() => self.count_stuck(filters),
            // The window's entries, not the project's records.
            _ if !self.updated.is_open() => Ok(self
                .updated_candidates(filters, usize::MAX)?
                .map_or(0, |c| c.len() as u64)),
            // Whole hours by their counts, as the summaries add them up.
            _ if !self.created.is_open() => {
                let q = summary_of(filters, self.created);
                let rows = self.store.summaries(self.project, &q)?;
                Ok(rows.iter().map(|r| r.count).sum())
            }
            [] if !self.residual() => self.project_records(),
            [one] if !self.residual() => self.store.count(&one.count_key(self.project)),
            _ => {
                let mut n = 0;
                self.for_each_match(filters, Dir::Asc, &mut |_, _| {
                    n += 1;
                    Ok(ControlFlow::Continue(()))
                })?;
                Ok(n)
            }
        }
    }
}

/// The summaries query that counts what the postings `filters` match in a
/// `created_*` window (one group, one bucket).
fn summary_of(filters: &[Posting], created: Window) -> SummaryQuery {
    let mut q = SummaryQuery {
        created,
        ..Default::default()
    };
    for p in filters {
        let v = p.value.clone();
        match p.field {
            IndexField::Status => q.status = v.as_deref().and_then(Status::parse),
            IndexField::SourceRegion => q.source_region = v,
            IndexField::DestinationRegion => q.destination_region = v,
            IndexField::Route => {
                if let Some((src, dst, status)) = v.as_deref().and_then(index::parse_route) {
                    (q.source_region, q.destination_region, q.status) = (src, dst, Some(status));
                }
            }
        }
    }
    q
}

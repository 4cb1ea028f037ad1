//! Plans that gather their candidates from a narrow index range, then sort
//! them in memory: `stuck=true` (the `Live` order up to each cutoff) and an
//! `updated_*` window on any other sort (the `updated_at` order inside the
//! window, when it holds at most [`GATHER_MAX`] entries). Candidates carry
//! `created_at`, `updated_at` and the record's number from their entries, so
//! sorting by one of those, and placing the marker, reads only the records
//! that tie (ties are ordered by id); other sorts read them all.

use super::*;

/// The most `updated_at` entries a window may hold for its candidates to be
/// gathered; a wider window is walked in sort order instead, where a page
/// fills early because most records match. Unit tests gather only tiny
/// windows, so generated worlds take both paths.
pub(super) const GATHER_MAX: usize = if cfg!(test) { 3 } else { 20_000 };

/// A record as an index entry knows it: its id only once read (the
/// marker's, as its record, has no number and its id).
pub(super) struct Candidate {
    pub id: Option<String>,
    pub created: [u8; 8],
    pub updated: Micros,
    pub number: u32,
}

impl Candidate {
    /// The marker as a candidate: it is compared, never put on a page.
    pub(super) fn of(id: &str, s: &RecordState) -> Candidate {
        Candidate {
            id: Some(id.to_owned()),
            created: s.created_at().key_bytes(),
            updated: s.updated_at(),
            number: u32::MAX,
        }
    }

    pub(super) fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
}

impl Planner<'_> {
    /// The records in the `updated_*` window that pass every other filter,
    /// or `None` when the window holds more than `limit` entries.
    pub(super) fn updated_candidates(
        &self,
        filters: &[Posting],
        limit: usize,
    ) -> Result<Option<Vec<Candidate>>, StoreError> {
        let prefix = self
            .store
            .list_prefix(&keys::order_list(self.project, OrderField::UpdatedAt));
        let from = self.updated.after.map(|t| t.key_bytes().to_vec());
        let mut seen = 0;
        let mut out = Vec::new();
        for kv in self
            .store
            .scan_list_from(&prefix, Dir::Asc, from.as_deref())?
        {
            let (k, v) = kv?;
            let e = order_entry(OrderField::UpdatedAt, &prefix, &k, &v)?;
            let updated = instant(&k, &e.value)?;
            if self.updated.passed(updated, Dir::Asc) {
                break;
            }
            seen += 1;
            if seen > limit {
                return Ok(None);
            }
            if self.admits(filters, e.created, Some(updated), e.number)? {
                out.push(Candidate {
                    id: None,
                    created: e.created,
                    updated,
                    number: e.number,
                });
            }
        }
        Ok(Some(out))
    }

    /// Sorts candidates by `order` on their entries' values, then by id in
    /// the `tie` direction — reading the ids of those that tie with another
    /// or with the marker first — and drops those not after the marker.
    pub(super) fn sort_candidates(
        &self,
        found: &mut Vec<Candidate>,
        order: &dyn Fn(&Candidate, &Candidate) -> Ordering,
        tie: Dir,
        after: Option<&Position>,
    ) -> Result<(), StoreError> {
        found.sort_by(order);
        let marker = after.map(Position::candidate);
        for group in found.chunk_by_mut(|a, b| order(a, b) == Ordering::Equal) {
            let tied =
                group.len() > 1 || marker.is_some_and(|m| order(&group[0], m) == Ordering::Equal);
            if tied {
                for c in group.iter_mut().filter(|c| c.id.is_none()) {
                    c.id = Some(self.store.row_of(c.number)?.0);
                }
                group.sort_by(|a, b| directed(a.id().cmp(b.id()), tie));
            }
        }
        if let Some(p) = after {
            found.retain(|c| p.follows_candidate(c, order));
        }
        Ok(())
    }

    /// Puts gathered candidates on the page in the order of `keys` (ties by
    /// id in the `tie` direction), after the marker if there is one.
    pub(super) fn emit_gathered(
        &mut self,
        mut found: Vec<Candidate>,
        keys: &[SortKey],
    ) -> Result<(), StoreError> {
        let tie = self.tie;
        let simple = match keys {
            [] => Some(None),
            [SortKey { field, dir }]
                if matches!(field, SortField::CreatedAt | SortField::UpdatedAt) =>
            {
                Some(Some((*field, *dir)))
            }
            _ => None,
        };
        let Some(key) = simple else {
            // Another sort: read the records and compare them whole.
            let mut rows = Vec::with_capacity(found.len());
            for c in found {
                rows.push((self.store.row_of(c.number)?, c.number));
            }
            rows.sort_by(|a, b| compare(&a.0, &b.0, keys, tie));
            for (row, number) in rows {
                self.page.push_row(&row, number);
                if self.page.done() {
                    break;
                }
            }
            return Ok(());
        };
        let order = |a: &Candidate, b: &Candidate| match key {
            None => Ordering::Equal,
            Some((SortField::CreatedAt, d)) => directed(a.created.cmp(&b.created), d),
            Some((_, d)) => directed(a.updated.cmp(&b.updated), d),
        };
        // The marker is placed by its own entry values and the ids that tie.
        let after = self.page.take_marker();
        self.sort_candidates(&mut found, &order, tie, after.as_ref())?;
        for c in found {
            self.page.push(c.number);
            if self.page.done() {
                break;
            }
        }
        Ok(())
    }
}

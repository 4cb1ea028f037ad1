//! Plans that gather their candidates from a narrow index range, then sort
//! them in memory: `stuck=true` (the `Live` order up to each cutoff) and an
//! `updated_*` window on any other sort (the `updated_at` order inside the
//! window, when it holds at most [`GATHER_MAX`] entries). Candidates carry
//! `created_at`, `updated_at` and `id` from their entries, so sorting by one
//! of those, and placing the marker, reads no record; other sorts read them.

use super::*;

/// The most `updated_at` entries a window may hold for its candidates to be
/// gathered; a wider window is walked in sort order instead, where a page
/// fills early because most records match. Unit tests gather only tiny
/// windows, so generated worlds take both paths.
pub(super) const GATHER_MAX: usize = if cfg!(test) { 3 } else { 20_000 };

/// A record as an index entry knows it (the marker's, as its record).
pub(super) struct Candidate {
    pub id: String,
    pub created: [u8; 8],
    pub updated: Micros,
    pub number: Option<u32>,
}

impl Candidate {
    pub(super) fn of(id: &str, s: &RecordState) -> Candidate {
        Candidate {
            id: id.to_owned(),
            created: s.created_at().key_bytes(),
            updated: s.updated_at(),
            number: None,
        }
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
            let (value, id) = order_entry(OrderField::UpdatedAt, &k, &k[prefix.len()..])?;
            let updated = instant(&k, &value)?;
            if self.updated.passed(updated, Dir::Asc) {
                break;
            }
            seen += 1;
            if seen > limit {
                return Ok(None);
            }
            let (created, number) = instant_number(&k, &v)?;
            if self.admits(filters, created, Some(updated), &id)? {
                out.push(Candidate {
                    id,
                    created,
                    updated,
                    number: Some(number),
                });
            }
        }
        Ok(Some(out))
    }

    /// Puts gathered candidates on the page in the order of `keys` (ties by
    /// id in the `tie` direction), after the marker if there is one.
    pub(super) fn emit_gathered(
        &mut self,
        mut found: Vec<Candidate>,
        keys: &[SortKey],
    ) -> Result<(), StoreError> {
        let tie = self.tie;
        let by_id = |a: &Candidate, b: &Candidate| directed(a.id.cmp(&b.id), tie);
        let simple = match keys {
            [] => Some(None),
            [SortKey { field, dir }]
                if matches!(
                    field,
                    SortField::CreatedAt | SortField::UpdatedAt | SortField::Id
                ) =>
            {
                Some(Some((*field, *dir)))
            }
            _ => None,
        };
        let Some(key) = simple else {
            // Another sort: read the records and compare them whole.
            let mut rows = Vec::with_capacity(found.len());
            for c in found {
                if let Some(s) = self.store.state_of(&c.id, c.number)? {
                    rows.push(((c.id, s), c.number));
                }
            }
            rows.sort_by(|a, b| compare(&a.0, &b.0, keys, tie));
            for (row, number) in rows {
                self.push_row(row, number);
                if self.cur.done() {
                    break;
                }
            }
            return Ok(());
        };
        let order = |a: &Candidate, b: &Candidate| {
            let o = match key {
                None => Ordering::Equal,
                Some((SortField::CreatedAt, d)) => directed(a.created.cmp(&b.created), d),
                Some((SortField::UpdatedAt, d)) => directed(a.updated.cmp(&b.updated), d),
                Some((_, d)) => directed(a.id.cmp(&b.id), d),
            };
            o.then_with(|| by_id(a, b))
        };
        found.sort_by(order);
        // The marker is placed by its own entry values: no record is read.
        if let Some((id, s)) = self.after.take() {
            let m = Candidate::of(&id, &s);
            found.retain(|c| order(c, &m) == Ordering::Greater);
        }
        for c in found {
            self.cur.push(c.id, c.number);
            if self.cur.done() {
                break;
            }
        }
        Ok(())
    }
}

//! Where a walk starts and what it lets onto the page: seeks to a window's
//! edge or the marker's sort value ([`Position`]), the per-candidate tests
//! of windows and `stuck=false`, and dropping candidates that do not come
//! after the marker.

use super::*;

/// The tighter of two seek bounds: the later one ascending, the earlier one
/// descending.
pub(super) fn tighter<T: Ord>(a: Option<T>, b: Option<T>, dir: Dir) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(match dir {
            Dir::Asc => a.max(b),
            Dir::Desc => a.min(b),
        }),
        (a, b) => a.or(b),
    }
}

/// A descending seek bound just past every entry that starts with `value`:
/// what follows a sort value in an entry is shorter than these 9 bytes (a
/// record number) or starts below 0xFF (an instant, an escaped id).
pub(super) fn past(value: &[u8]) -> Vec<u8> {
    let mut b = value.to_vec();
    b.extend_from_slice(&[0xff; 9]);
    b
}

impl Planner<'_> {
    /// Where a `created_at` walk starts: the window's edge, or the marker's
    /// instant when that is nearer (descending bounds are exclusive).
    pub(super) fn created_seek(&self, dir: Dir) -> Option<[u8; 8]> {
        let marker = self.page.marker().map(|p| p.created_bound(dir));
        let bound = match dir {
            Dir::Asc => tighter(self.created.after, marker, dir),
            Dir::Desc => tighter(self.created.before, marker, dir),
        };
        bound.map(Micros::key_bytes)
    }

    /// Where the walk of an order starts: the `updated_*` window's edge, or
    /// the start of the marker's sort value when that is nearer.
    pub(super) fn order_seek(&self, order: OrderField, dir: Dir) -> Option<Vec<u8>> {
        let window = match (order, dir) {
            (OrderField::UpdatedAt, Dir::Asc) => self.updated.after,
            (OrderField::UpdatedAt, Dir::Desc) => self.updated.before,
            _ => None,
        }
        .map(|t| t.key_bytes().to_vec());
        let marker = self.page.marker().map(|p| p.order_bound(order, dir));
        tighter(window, marker, dir)
    }

    /// Whether a filter beyond the postings applies (a window, `stuck`),
    /// so the counts of whole lists overcount.
    pub(super) fn residual(&self) -> bool {
        !self.created.is_open() || !self.updated.is_open() || self.stuck.is_some()
    }

    /// Whether a candidate passes the filters, the windows and `stuck=false`
    /// (`stuck=true` walks its own index). `updated` is known on the walk of
    /// the `updated_at` order; elsewhere an `updated_*` window or `stuck`
    /// reads the record.
    pub(super) fn admits(
        &self,
        filters: &[Posting],
        created: [u8; 8],
        updated: Option<Micros>,
        number: u32,
    ) -> Result<bool, StoreError> {
        if !self.created.contains(Micros::from_key_bytes(created)) {
            return Ok(false);
        }
        if !self.matches_all(filters, created, number)? {
            return Ok(false);
        }
        if self.updated.is_open() && self.stuck.is_none() {
            return Ok(true);
        }
        let record = match (updated, self.stuck) {
            (Some(_), None) => None,
            _ => Some(self.store.row_of(number)?.1),
        };
        let updated = match (&record, updated) {
            (Some(s), _) => s.updated_at(),
            (None, u) => u.expect("known when no record was read"),
        };
        let stuck_ok = match (&record, self.stuck) {
            (Some(s), Some(k)) => k.is_stuck(s) == k.want,
            _ => true,
        };
        Ok(stuck_ok && self.updated.contains(updated))
    }

    /// Puts a record on the page unless it does not come after the marker
    /// yet (then it is read, to be placed).
    pub(super) fn push(&mut self, number: u32) -> Result<(), StoreError> {
        if self.page.marker().is_none() {
            self.page.push(number);
            return Ok(());
        }
        let row = self.store.row_of(number)?;
        self.page.push_row(&row, number);
        Ok(())
    }
}

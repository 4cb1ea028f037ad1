//! The paging position: where a page starts. An `offset` skips rows (the
//! planner's `Cursor`); a `marker` names the record the page follows.
//! One rule places any record against the marker — it is on the page when
//! it comes after the marker in the page's sort, ties broken by id in the
//! direction of the last key ([`Position::follows`]) — and every plan places
//! its candidates by it, or by the forms of it that an index entry's values
//! decide without reading the record. All of them are here: where a walk
//! may start (the marker's sort value, as the walk encodes it), and whether
//! a group, a tie run or a gathered candidate comes after the marker.

use std::cmp::Ordering;

use super::gather::Candidate;
use super::seek::past;
use super::{
    compare, directed, group_value, keys, Dir, IndexField, ListQuery, OrderField, ReadView, Row,
    SortKey, StoreError, Tied,
};
use crate::instant::Micros;
use crate::record::Field;

/// The marker record, and the sort of the page that follows it.
pub(super) struct Position {
    marker: Row,
    /// The marker as its index entries give it, for placing candidates.
    candidate: Candidate,
    keys: Vec<SortKey>,
    tie: Dir,
}

impl ReadView {
    /// The marker record of `q`, which must be listed under `project` (and
    /// cannot be combined with an offset).
    pub(super) fn marker(&self, project: &str, q: &ListQuery) -> Result<Option<Row>, StoreError> {
        let Some(id) = &q.marker else {
            return Ok(None);
        };
        if q.offset.is_some_and(|o| o > 0) {
            return Err(StoreError::query(
                "marker",
                "`marker` and `offset` cannot be combined",
            ));
        }
        match self.record_state(id)? {
            Some(s) if s.projects().contains(&project) => Ok(Some((id.clone(), s))),
            _ => Err(StoreError::query(
                "marker",
                format!("record `{id}` is not listed under project `{project}`"),
            )),
        }
    }
}

impl Position {
    /// The page after `marker`, sorted by `keys`, ties by id in `tie`.
    pub(super) fn new(marker: Row, keys: Vec<SortKey>, tie: Dir) -> Position {
        Position {
            candidate: Candidate::of(&marker.0, &marker.1),
            marker,
            keys,
            tie,
        }
    }

    /// The rule: whether `row` comes after the marker in the page's sort.
    pub(super) fn follows(&self, row: &Row) -> bool {
        compare(row, &self.marker, &self.keys, self.tie) == Ordering::Greater
    }

    /// The rule on what candidates' entries carry: `order` compares their
    /// values in the page's sort (a key they hold), then ids decide.
    pub(super) fn follows_candidate(
        &self,
        c: &Candidate,
        order: &dyn Fn(&Candidate, &Candidate) -> Ordering,
    ) -> bool {
        order(c, &self.candidate)
            .then_with(|| directed(c.id().cmp(&self.marker.0), self.tie))
            .is_gt()
    }

    /// The rule in the tie run of the marker's sort value, whose entries
    /// carry `created_at`: by it when it is the rest of the sort (`Some`
    /// of its direction), then by id.
    pub(super) fn follows_in_run(&self, t: &Tied, created: Option<Dir>) -> bool {
        let mc = self.candidate.created;
        created
            .map_or(Ordering::Equal, |d| directed(t.created.cmp(&mc), d))
            .then_with(|| directed(t.id().cmp(&self.marker.0), self.tie))
            .is_gt()
    }

    /// The marker as a candidate: compared, never put on a page.
    pub(super) fn candidate(&self) -> &Candidate {
        &self.candidate
    }

    /// Where the marker's group is against the group of `value` in a walk
    /// of `field`'s groups in `dir`: `Less`, a group before it (skipped
    /// whole); `Equal`, its own; `Greater`, one past it.
    pub(super) fn group_order(&self, field: IndexField, value: Option<&str>, dir: Dir) -> Ordering {
        let own = group_value(field, &self.marker.1);
        directed(value.cmp(&own.as_deref()), dir)
    }

    /// The nearest instant a `created_at` walk in `dir` may start at:
    /// the marker's own (descending bounds are exclusive).
    pub(super) fn created_bound(&self, dir: Dir) -> Micros {
        let m = self.marker.1.created_at();
        match dir {
            Dir::Asc => m,
            Dir::Desc => Micros(m.0 + 1),
        }
    }

    /// Where the walk of `order` in `dir` may start: the start of the
    /// marker's sort value as the order's keys encode it.
    pub(super) fn order_bound(&self, order: OrderField, dir: Dir) -> Vec<u8> {
        let (id, s) = &self.marker;
        let mut value = Vec::new();
        match order {
            OrderField::UpdatedAt => value.extend_from_slice(&s.updated_at().key_bytes()),
            OrderField::Id => keys::push_id_order(&mut value, id.as_bytes()),
            OrderField::PlanId => keys::push_plan_order(&mut value, s.get(Field::PlanId)),
            // Never a sort order: the live lists are walked by `stuck.rs`.
            OrderField::Live => {}
        }
        match dir {
            Dir::Asc => value,
            Dir::Desc => past(&value),
        }
    }

    /// The marker's sort value as the walk of `order` (`None`: the
    /// postings, by `created_at`) reads its entries' values.
    pub(super) fn value_in(&self, order: Option<OrderField>) -> Option<Vec<u8>> {
        let (id, s) = &self.marker;
        Some(match order {
            None => s.created_at().key_bytes().to_vec(),
            Some(OrderField::UpdatedAt) => s.updated_at().key_bytes().to_vec(),
            Some(OrderField::Id) => id.as_bytes().to_vec(),
            Some(OrderField::PlanId) => {
                let mut v = Vec::new();
                keys::push_plan_order(&mut v, s.get(Field::PlanId));
                v
            }
            Some(OrderField::Live) => return None,
        })
    }
}

//! The paging position: where a page starts, and the page it fills
//! ([`Paging`]). An `offset` skips rows; a `marker` names the record the
//! page follows.
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
    compare, directed, group_value, keys, Dir, IndexField, OrderField, Row, SortKey, Tied,
};
use crate::instant::Micros;
use crate::record::Field;

/// The page being filled, in the order a plan emits its records: the rows
/// the offset still skips, or the marker's place until the walk passes it;
/// then the numbers taken (the records are read after, in number order).
/// Every plan puts records on a page through it, and only through it.
pub(super) struct Paging {
    skip: usize,
    take: usize,
    numbers: Vec<u32>,
    /// The marker's place, until the walk has passed it.
    after: Option<Position>,
}

impl Paging {
    /// A page of `limit` records after `offset` rows or after `marker`;
    /// it takes one record more, which tells whether more follow.
    pub(super) fn new(offset: usize, limit: usize, marker: Option<Position>) -> Paging {
        Paging {
            skip: offset,
            take: limit.saturating_add(usize::from(limit > 0)),
            numbers: Vec::new(),
            after: marker,
        }
    }

    /// Takes the next record in the page's order, as an entry names it:
    /// the caller knows it comes after the marker.
    pub(super) fn push(&mut self, number: u32) {
        if self.skip > 0 {
            self.skip -= 1;
        } else if self.take > 0 {
            self.numbers.push(number);
            self.take -= 1;
        }
    }

    /// Takes the next record in the page's order, read: placed by the rule
    /// while the marker has not been passed.
    pub(super) fn push_row(&mut self, row: &Row, number: u32) {
        if let Some(p) = &self.after {
            if !p.follows(row) {
                return;
            }
            self.after = None;
        }
        self.push(number);
    }

    /// Skips a whole run of `n` rows if the offset covers it.
    pub(super) fn skip_run(&mut self, n: usize) -> bool {
        let covered = self.skip >= n;
        if covered {
            self.skip -= n;
        }
        covered
    }

    /// Rows the offset still skips.
    pub(super) fn skip(&self) -> usize {
        self.skip
    }

    /// Rows still to skip and to take: how deep the plan must read.
    pub(super) fn depth(&self) -> usize {
        self.skip.saturating_add(self.take)
    }

    pub(super) fn done(&self) -> bool {
        self.take == 0
    }

    /// The marker's place, while the walk has not passed it.
    pub(super) fn marker(&self) -> Option<&Position> {
        self.after.as_ref()
    }

    /// Hands the marker to a plan that places its candidates itself (by
    /// the rule's forms on entries) before pushing them.
    pub(super) fn take_marker(&mut self) -> Option<Position> {
        self.after.take()
    }

    /// A walk has reached what follows the marker: all it emits is on.
    pub(super) fn pass_marker(&mut self) {
        self.after = None;
    }

    /// A plan that took the marker leaves it for `push_row` to place.
    pub(super) fn keep_marker(&mut self, p: Position) {
        self.after = Some(p);
    }

    /// The numbers taken, in page order.
    pub(super) fn into_numbers(self) -> Vec<u32> {
        self.numbers
    }
}

/// The marker record, and the sort of the page that follows it.
pub(super) struct Position {
    marker: Row,
    /// The marker as its index entries give it, for placing candidates.
    candidate: Candidate,
    keys: Vec<SortKey>,
    tie: Dir,
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

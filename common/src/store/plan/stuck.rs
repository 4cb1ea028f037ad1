//! `stuck=true`: each project keeps, per status still under way, a `Live`
//! list of those records in `created_at` order, each with its `updated_at`;
//! a record is stuck when that is before its status's cutoff. Sorted by
//! `created_at` (the default) a page walks the lists newest (or oldest) first
//! and stops when full; other sorts and the count read the lists whole — the
//! project's unfinished records, never the rest — and `gather.rs` sorts them
//! and places the marker.

use std::collections::HashSet;
use std::ops::ControlFlow;

use super::gather::Candidate;
use super::{directed, instant, Dir, Planner, Posting, Step, StoreError};
use crate::instant::Micros;
use crate::record::Status;
use crate::store::keys::{self, space};
use crate::store::lists;
use crate::store::query::Stuck;

/// One entry of a `Live` list, `created_at number → updated_at`.
fn live_entry(list: &[u8], k: &[u8], v: &[u8]) -> Result<Candidate, StoreError> {
    let (created, number) = keys::read_instant_number(&k[list.len()..])
        .ok_or_else(|| StoreError::corrupt(k, "bad live entry"))?;
    Ok(Candidate {
        id: None,
        created,
        updated: instant(k, v)?,
        number,
    })
}

impl Planner<'_> {
    /// Walks one status's `Live` list in `dir` from `seek`, handing `f`
    /// each stuck record that passes the filters and windows, until it
    /// breaks.
    fn each_stuck(
        &self,
        status: Status,
        dir: Dir,
        seek: Option<[u8; 8]>,
        filters: &[Posting],
        f: &mut dyn FnMut(Candidate) -> Step,
    ) -> Result<(), StoreError> {
        let Some(cutoff) = self.stuck.and_then(|k| k.cutoff(status)) else {
            return Ok(());
        };
        let list = self
            .store
            .list_prefix(&keys::live_list(self.project, status));
        let seek = seek.map(|b| b.to_vec());
        for kv in self.store.scan_list_from(&list, dir, seek.as_deref())? {
            let (k, v) = kv?;
            let c = live_entry(&list, &k, &v)?;
            let created = Micros::from_key_bytes(c.created);
            if self.created.passed(created, dir) {
                break;
            }
            if c.updated < cutoff
                && self.updated.contains(c.updated)
                && self.created.contains(created)
                && self.matches_all(filters, c.created, c.number)?
                && f(c)?.is_break()
            {
                break;
            }
        }
        Ok(())
    }

    /// Every stuck record of the project that passes the filters and
    /// windows: the project's unfinished records are read, no others.
    pub(super) fn stuck_candidates(
        &self,
        filters: &[Posting],
    ) -> Result<Vec<Candidate>, StoreError> {
        let mut out = Vec::new();
        let from = self.created.after.map(Micros::key_bytes);
        for status in Stuck::STATUSES {
            self.each_stuck(status, Dir::Asc, from, filters, &mut |c| {
                out.push(c);
                Ok(ControlFlow::Continue(()))
            })?;
        }
        Ok(out)
    }

    pub(super) fn count_stuck(&self, filters: &[Posting]) -> Result<u64, StoreError> {
        Ok(self.stuck_candidates(filters)?.len() as u64)
    }

    /// `stuck=true` sorted by `created_at` (ties by id the same way): each
    /// status list is walked in that order from the window's edge or the
    /// marker, and gives at most a page's worth (and the records that tie
    /// with its last); the two are merged.
    pub(super) fn emit_stuck_by_created(
        &mut self,
        dir: Dir,
        filters: &[Posting],
    ) -> Result<(), StoreError> {
        let need = self.page.depth();
        let seek = self.created_seek(dir);
        let by_created = |a: &Candidate, b: &Candidate| directed(a.created.cmp(&b.created), dir);
        let after = self.page.take_marker();
        let store = self.store;
        let mut found = Vec::new();
        for status in Stuck::STATUSES {
            let mut n = 0;
            let mut last = None;
            self.each_stuck(status, dir, seek, filters, &mut |mut c| {
                // Past a page's worth, only what ties with the last one
                // taken: their order is by id, known once they are read.
                if n >= need && last != Some(c.created) {
                    return Ok(ControlFlow::Break(()));
                }
                // Only what follows the marker counts towards the page: a
                // record tied with it is placed by its id, read here.
                if let Some(p) = &after {
                    if by_created(&c, p.candidate()).is_eq() {
                        c.id = Some(store.row_of(c.number)?.0);
                    }
                    if !p.follows_candidate(&c, &by_created) {
                        return Ok(ControlFlow::Continue(()));
                    }
                }
                last = Some(c.created);
                found.push(c);
                n += 1;
                Ok(ControlFlow::Continue(()))
            })?;
        }
        self.sort_candidates(&mut found, &by_created, dir, after.as_ref())?;
        for c in found {
            self.page.push(c.number);
            if self.page.done() {
                break;
            }
        }
        Ok(())
    }
}

impl crate::store::ReadView {
    /// How many records are stuck, per stuck status, across every project
    /// (a record listed under two projects counts once): for the metric.
    /// Reads every project's unfinished records.
    pub fn stuck_totals(&self, stuck: &Stuck) -> Result<Vec<(Status, u64)>, StoreError> {
        let mut numbers: [HashSet<u32>; 2] = Default::default();
        for project in self.projects()? {
            for (status, seen) in Stuck::STATUSES.into_iter().zip(&mut numbers) {
                let Some(cutoff) = stuck.cutoff(status) else {
                    continue;
                };
                let list = self.list_prefix(&keys::live_list(&project, status));
                for kv in self.scan_list_from(&list, Dir::Asc, None)? {
                    let (k, v) = kv?;
                    let c = live_entry(&list, &k, &v)?;
                    if c.updated < cutoff {
                        seen.insert(c.number);
                    }
                }
            }
        }
        Ok(Stuck::STATUSES
            .into_iter()
            .zip(numbers)
            .map(|(s, n)| (s, n.len() as u64))
            .collect())
    }

    /// Every project some record is listed under, sorted, from the counts
    /// (every record has a route count under each of its projects): one
    /// seek per project.
    pub fn projects(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut from = vec![space::COUNT];
        let snap = self.snap();
        while let Some(kv) = snap
            .range(
                std::ops::Bound::Included(from.clone()),
                std::ops::Bound::Excluded(vec![space::COUNT + 1]),
                false,
            )
            .next()
        {
            let (k, _) = kv?;
            let project = keys::read_count_project(&k)
                .ok_or_else(|| StoreError::corrupt(&k, "bad count key"))?;
            from = lists::prefix_end(&keys::project_counts(&project));
            out.push(project);
        }
        Ok(out)
    }
}

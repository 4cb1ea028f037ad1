//! `stuck=true`: the project's `Live` order holds its records still under
//! way, by status and `updated_at`, so the stuck ones are the oldest entries
//! of each live status, up to that status's cutoff — a walk of just them,
//! never of the project; `gather.rs` sorts them and places the marker.

use std::collections::HashSet;

use super::gather::Candidate;
use super::{created_value, instant, order_entry, order_prefix, Dir, Planner, Posting, StoreError};
use crate::instant::Micros;
use crate::record::Status;
use crate::store::blocks;
use crate::store::index::{self, OrderField};
use crate::store::keys::{self, space};
use crate::store::query::Stuck;

impl Planner<'_> {
    /// The project's stuck records that pass the filters and the windows.
    pub(super) fn stuck_candidates(
        &self,
        filters: &[Posting],
    ) -> Result<Vec<Candidate>, StoreError> {
        let Some(stuck) = self.stuck else {
            return Ok(Vec::new());
        };
        let prefix = order_prefix(self.project, OrderField::Live);
        let mut out = Vec::new();
        for status in Stuck::STATUSES {
            let Some(cutoff) = stuck.cutoff(status) else {
                continue;
            };
            let b = index::status_byte(status);
            for kv in self.store.scan_list_from(&prefix, Dir::Asc, Some(&[b]))? {
                let (k, v) = kv?;
                let tail = &k[prefix.len()..];
                if tail.first() != Some(&b) {
                    break;
                }
                let (value, id) = order_entry(OrderField::Live, &k, tail)?;
                let updated = instant(&k, &value[1..])?;
                if updated >= cutoff {
                    break;
                }
                let created = created_value(&k, &v)?;
                if self.created.contains(Micros::from_key_bytes(created))
                    && self.updated.contains(updated)
                    && self.matches_all(filters, created, &id)?
                {
                    out.push(Candidate {
                        id,
                        created,
                        updated,
                    });
                }
            }
        }
        Ok(out)
    }

    pub(super) fn count_stuck(&self, filters: &[Posting]) -> Result<u64, StoreError> {
        Ok(self.stuck_candidates(filters)?.len() as u64)
    }
}

impl crate::store::Store {
    /// How many records are stuck, per stuck status, across every project
    /// (a record listed under two projects counts once): for the metric.
    pub fn stuck_totals(&self, stuck: &Stuck) -> Result<Vec<(Status, u64)>, StoreError> {
        let mut ids: [HashSet<String>; 2] = Default::default();
        for project in self.projects()? {
            let prefix = order_prefix(&project, OrderField::Live);
            for (status, seen) in Stuck::STATUSES.into_iter().zip(&mut ids) {
                let (Some(cutoff), b) = (stuck.cutoff(status), index::status_byte(status)) else {
                    continue;
                };
                for kv in self.scan_list_from(&prefix, Dir::Asc, Some(&[b]))? {
                    let (k, _) = kv?;
                    let tail = &k[prefix.len()..];
                    if tail.first() != Some(&b) {
                        break;
                    }
                    let (value, id) = order_entry(OrderField::Live, &k, tail)?;
                    if instant(&k, &value[1..])? >= cutoff {
                        break;
                    }
                    seen.insert(id);
                }
            }
        }
        Ok(Stuck::STATUSES
            .into_iter()
            .zip(ids)
            .map(|(s, ids)| (s, ids.len() as u64))
            .collect())
    }

    /// Every project some record is listed under, from the counts: one seek
    /// per project.
    fn projects(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut from = vec![space::COUNT];
        while let Some(kv) = self.tree.range(from.clone()..vec![space::COUNT + 1]).next() {
            let (k, _) = kv?;
            let (project, _) =
                keys::read_str(&k[1..]).ok_or_else(|| StoreError::corrupt(&k, "bad count key"))?;
            let mut next = vec![space::COUNT];
            keys::push_str(&mut next, &project);
            from = blocks::prefix_end(&next);
            out.push(
                String::from_utf8(project).map_err(|_| StoreError::corrupt(&k, "bad project"))?,
            );
        }
        Ok(out)
    }
}

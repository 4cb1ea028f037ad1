//! Summaries: how many of a project's records fall in each group of status,
//! source region and destination region, per hour or day of `created_at`.
//! Read from the route counts — every record is in exactly one route posting,
//! so they partition the project — and their per-hour counts; only the
//! partial hours at a window's edges walk posting entries. No record is read,
//! except the stuck ones with `stuck` (for their regions).

use std::collections::BTreeMap;

use super::index::{self, IndexField, Posting, HOUR};
use super::keys;
use super::lists;
use super::query::{ListQuery, Stuck, Window};
use super::{ReadView, StoreError};
use crate::instant::Micros;
use crate::record::Status;

crate::vocabulary! {
    /// A field summaries can group by.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum GroupField {
        Status = "status",
        SourceRegion = "source_region",
        DestinationRegion = "destination_region",
    }
}

crate::vocabulary! {
    /// The width of a time bucket (UTC, by `created_at`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Interval {
        Hour = "hour",
        Day = "day",
    }
}

impl Interval {
    /// The start of the bucket `t` falls in.
    pub fn start(self, t: Micros) -> Micros {
        let width = match self {
            Interval::Hour => HOUR,
            Interval::Day => 24 * HOUR,
        };
        Micros(t.0.div_euclid(width) * width)
    }
}

/// A summaries request within one project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryQuery {
    /// Distinct fields, in the order the groups carry them.
    pub group_by: Vec<GroupField>,
    /// `None`: one bucket for all time.
    pub interval: Option<Interval>,
    pub source_region: Option<String>,
    pub destination_region: Option<String>,
    pub status: Option<Status>,
    pub created: Window,
    pub stuck: Option<Stuck>,
}

/// One non-empty group of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// The group's value of each `group_by` field, in that order (regions
    /// may be absent).
    pub group: Vec<Option<String>>,
    /// The bucket's start, with an interval.
    pub start: Option<Micros>,
    pub count: u64,
}

/// Counts per (bucket start, group values); signed while stuck records are
/// subtracted.
type Buckets = BTreeMap<(Option<Micros>, Vec<Option<String>>), i64>;

/// One route of the project: its regions, status and record count.
struct Route {
    posting: Posting,
    source_region: Option<String>,
    destination_region: Option<String>,
    status: Status,
    count: u64,
}

impl Route {
    fn value(&self, f: GroupField) -> Option<String> {
        match f {
            GroupField::Status => Some(self.status.as_str().to_owned()),
            GroupField::SourceRegion => self.source_region.clone(),
            GroupField::DestinationRegion => self.destination_region.clone(),
        }
    }

    fn matches(&self, q: &SummaryQuery) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
        eq(&q.source_region, &self.source_region)
            && eq(&q.destination_region, &self.destination_region)
            && q.status.is_none_or(|s| s == self.status)
    }
}

impl ReadView {
    /// The non-empty groups of `q`, buckets in time order, groups within a
    /// bucket by their values (absent first).
    pub fn summaries(
        &self,
        project: &str,
        q: &SummaryQuery,
    ) -> Result<Vec<SummaryRow>, StoreError> {
        let mut out: Buckets = BTreeMap::new();
        match q.stuck {
            None => self.add_counts(project, q, &mut out)?,
            // Stuck records are few: group the ones the list returns.
            Some(k) if k.want => self.add_stuck(project, q, &mut out, 1)?,
            // Everything but them: all, less the stuck ones.
            Some(k) => {
                self.add_counts(project, q, &mut out)?;
                let stuck = Stuck { want: true, ..k };
                let q = SummaryQuery {
                    stuck: Some(stuck),
                    ..q.clone()
                };
                self.add_stuck(project, &q, &mut out, -1)?;
            }
        }
        Ok(out
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|((start, group), count)| SummaryRow {
                group,
                start,
                count: count as u64,
            })
            .collect())
    }

    /// Adds every record matching `q` (`stuck` aside) to its group, from the
    /// counts.
    fn add_counts(
        &self,
        project: &str,
        q: &SummaryQuery,
        out: &mut Buckets,
    ) -> Result<(), StoreError> {
        let by_hour = q.interval.is_some() || !q.created.is_open();
        // Grouping by status alone over all regions: the status postings'
        // hour counts are fewer than the routes'.
        let status_only = q.source_region.is_none()
            && q.destination_region.is_none()
            && q.group_by.iter().all(|f| *f == GroupField::Status);
        if by_hour && status_only {
            for status in Status::ALL
                .into_iter()
                .filter(|s| q.status.is_none_or(|w| w == *s))
            {
                let posting = Posting::new(IndexField::Status, Some(status.as_str()));
                let group = q
                    .group_by
                    .iter()
                    .map(|_| Some(status.as_str().to_owned()))
                    .collect();
                self.add_hours(project, &posting, q, group, out)?;
            }
        } else {
            for route in self.routes(project)?.into_iter().filter(|r| r.matches(q)) {
                let group: Vec<Option<String>> =
                    q.group_by.iter().map(|f| route.value(*f)).collect();
                match by_hour {
                    false => *out.entry((None, group)).or_default() += route.count as i64,
                    true => self.add_hours(project, &route.posting, q, group, out)?,
                }
            }
        }
        Ok(())
    }

    /// Adds `sign` for each stuck record matching `q` to its group: the list
    /// finds them (few, by the `Live` order).
    fn add_stuck(
        &self,
        project: &str,
        q: &SummaryQuery,
        out: &mut Buckets,
        sign: i64,
    ) -> Result<(), StoreError> {
        let list = ListQuery {
            source_region: q.source_region.clone(),
            destination_region: q.destination_region.clone(),
            status: q.status,
            created: q.created,
            stuck: q.stuck,
            limit: Some(usize::MAX),
            ..Default::default()
        };
        for r in self.list(project, &list)?.records {
            let group = q
                .group_by
                .iter()
                .map(|f| match f {
                    GroupField::Status => Some(r.status.as_str().to_owned()),
                    GroupField::SourceRegion => r.source_region.clone(),
                    GroupField::DestinationRegion => r.destination_region.clone(),
                })
                .collect();
            let created = Micros::parse_api(&r.created_at)
                .ok_or_else(|| StoreError::corrupt(r.id.as_bytes(), "unrenderable created_at"))?;
            *out.entry((q.interval.map(|i| i.start(created)), group))
                .or_default() += sign;
        }
        Ok(())
    }

    /// The distinct (source region, destination region) pairs of the
    /// project's records, sorted; records missing either region are left out.
    pub fn region_pairs(&self, project: &str) -> Result<Vec<(String, String)>, StoreError> {
        let pairs: std::collections::BTreeSet<(String, String)> = self
            .routes(project)?
            .into_iter()
            .filter_map(|r| Some((r.source_region?, r.destination_region?)))
            .collect();
        Ok(pairs.into_iter().collect())
    }

    /// Every route of the project with its count, from the route counts.
    fn routes(&self, project: &str) -> Result<Vec<Route>, StoreError> {
        let prefix = keys::field_counts(project, IndexField::Route);
        let mut routes = Vec::new();
        for kv in lists::scan(&self.snap(), &prefix, true) {
            let (k, v) = kv?;
            let bad = || StoreError::corrupt(&k, "bad route count");
            let value = keys::read_count_value(&k[prefix.len()..])
                .flatten()
                .ok_or_else(bad)?;
            let (source_region, destination_region, status) =
                index::parse_route(&value).ok_or_else(bad)?;
            let count = keys::read_count(&v).ok_or_else(bad)?;
            routes.push(Route {
                posting: Posting {
                    field: IndexField::Route,
                    value: Some(value),
                },
                source_region,
                destination_region,
                status,
                count,
            });
        }
        Ok(routes)
    }

    /// Adds a posting's records inside the window to their buckets: whole
    /// hours by their counts, an hour cut by the window's edge by walking its
    /// entries.
    fn add_hours(
        &self,
        project: &str,
        posting: &Posting,
        q: &SummaryQuery,
        group: Vec<Option<String>>,
        out: &mut Buckets,
    ) -> Result<(), StoreError> {
        let prefix = self.hour_prefix(posting, project);
        let from = q.created.after.map(index::hour_start);
        let start = match from {
            Some(h) => [prefix.as_slice(), &h.key_bytes()].concat(),
            None => prefix.clone(),
        };
        let end = match q.created.before {
            Some(b) => [prefix.as_slice(), &b.key_bytes()].concat(),
            None => lists::prefix_end(&prefix),
        };
        let hours = self.snap().range(
            std::ops::Bound::Included(start),
            std::ops::Bound::Excluded(end),
            false,
        );
        for kv in hours {
            let (k, v) = kv?;
            let v = lists::bytes_of(v);
            let bad = || StoreError::corrupt(&k, "bad hour count");
            let hour = Micros::from_key_bytes(keys::read_hour(&k[prefix.len()..]).ok_or_else(bad)?);
            let n = keys::read_count(&v).ok_or_else(bad)?;
            let hour_end = Micros(hour.0 + HOUR);
            let whole = q.created.after.is_none_or(|a| a <= hour)
                && q.created.before.is_none_or(|b| hour_end <= b);
            let n = match whole {
                true => n,
                false => self.count_entries(project, posting, hour, hour_end, &q.created)?,
            };
            let bucket = q.interval.map(|i| i.start(hour));
            *out.entry((bucket, group.clone())).or_default() += n as i64;
        }
        Ok(())
    }

    /// The entries of a posting created in `[from, to)` and inside `window`.
    fn count_entries(
        &self,
        project: &str,
        posting: &Posting,
        from: Micros,
        to: Micros,
        window: &Window,
    ) -> Result<u64, StoreError> {
        let lo = window.after.map_or(from, |a| a.max(from));
        let hi = window.before.map_or(to, |b| b.min(to));
        let list = self.list_prefix(&posting.name(project));
        let mut n = 0;
        for kv in lists::scan_from(&self.snap(), &list, &lo.key_bytes(), true) {
            let (k, _) = kv?;
            let (created, _) = keys::read_instant_number(&k[list.len()..])
                .ok_or_else(|| StoreError::corrupt(&k, "bad posting key"))?;
            if Micros::from_key_bytes(created) >= hi {
                break;
            }
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::store::tests::{arb_event, arb_stuck, arb_window, messages};
    use crate::store::{ListQuery, Store};
    use crate::testkit::reference;
    use crate::Event;

    fn arb_summary() -> impl Strategy<Value = (&'static str, SummaryQuery)> {
        let opt = |vals: &'static [&'static str]| {
            proptest::option::of(proptest::sample::select(vals).prop_map(str::to_owned))
        };
        (
            proptest::sample::select(vec!["p1", "p2", "p\0x"]),
            proptest::sample::subsequence(GroupField::ALL.to_vec(), 0..=3).prop_shuffle(),
            proptest::option::of(proptest::sample::select(Interval::ALL.to_vec())),
            (opt(&["r1", "r2"]), opt(&["r1", "r3"])),
            proptest::option::of(proptest::sample::select(Status::ALL.to_vec())),
            arb_window(),
            proptest::option::of(arb_stuck()),
        )
            .prop_map(
                |(p, group_by, interval, (src, dst), status, created, stuck)| {
                    (
                        p,
                        SummaryQuery {
                            group_by,
                            interval,
                            source_region: src,
                            destination_region: dst,
                            status,
                            created,
                            stuck,
                        },
                    )
                },
            )
    }

    /// The summaries as the reference computes them: filter the folded
    /// records, group, bucket by the parsed `created_at`.
    fn expected(events: &[Event], project: &str, q: &SummaryQuery) -> Vec<SummaryRow> {
        let mut out: BTreeMap<(Option<Micros>, Vec<Option<String>>), u64> = BTreeMap::new();
        for r in reference::fold_events(events).values() {
            let created = Micros::parse_api(&r.created_at).unwrap();
            let eq = |w: &Option<String>, h: &Option<String>| w.is_none() || w == h;
            if reference::listed_under(r, project)
                && eq(&q.source_region, &r.source_region)
                && eq(&q.destination_region, &r.destination_region)
                && q.status.is_none_or(|s| s == r.status)
                && q.created.contains(created)
                && q.stuck.is_none_or(|k| reference::is_stuck(r, &k) == k.want)
            {
                let group = q
                    .group_by
                    .iter()
                    .map(|f| match f {
                        GroupField::Status => Some(r.status.as_str().to_owned()),
                        GroupField::SourceRegion => r.source_region.clone(),
                        GroupField::DestinationRegion => r.destination_region.clone(),
                    })
                    .collect();
                *out.entry((q.interval.map(|i| i.start(created)), group))
                    .or_default() += 1;
            }
        }
        out.into_iter()
            .map(|((start, group), count)| SummaryRow {
                group,
                start,
                count,
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The projects with records are exactly those the reference's
        /// records are listed under.
        #[test]
        fn projects_are_those_with_records(events in proptest::collection::vec(arb_event(), 0..40)) {
            let store = Store::temporary().unwrap();
            store.apply_batch(&messages(&events)).unwrap();
            let want: std::collections::BTreeSet<String> = reference::fold_events(&events)
                .values()
                .flat_map(|r| [r.source_project_id.clone(), r.destination_project_id.clone()])
                .flatten()
                .collect();
            prop_assert_eq!(store.view().projects().unwrap(), want.into_iter().collect::<Vec<_>>());
        }

        /// Summaries equal the reference's grouping, their total equals the
        /// list's count with the same filters, and every group with values
        /// equals the list's count filtered to it and to its bucket.
        #[test]
        fn summaries_equal_the_reference_and_the_list_counts(
            events in proptest::collection::vec(arb_event(), 0..60),
            queries in proptest::collection::vec(arb_summary(), 1..8),
        ) {
            let mut seen = std::collections::HashSet::new();
            let events: Vec<Event> = events.into_iter().filter(|e| seen.insert((e.record_id.clone(), e.event_id.clone()))).collect();
            let store = Store::temporary().unwrap();
            store.apply_batch(&messages(&events)).unwrap();
            for (project, q) in queries {
                let rows = store.view().summaries(project, &q).unwrap();
                prop_assert_eq!(&rows, &expected(&events, project, &q), "{:?}", q);
                let list = |lq: ListQuery| store.view().list(project, &ListQuery { with_count: Some(true), limit: Some(0), ..lq }).unwrap().count.unwrap();
                let base = ListQuery {
                    source_region: q.source_region.clone(),
                    destination_region: q.destination_region.clone(),
                    status: q.status,
                    created: q.created,
                    stuck: q.stuck,
                    ..Default::default()
                };
                prop_assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), list(base.clone()));
                for row in rows.iter().filter(|r| r.group.iter().all(Option::is_some)) {
                    let mut lq = base.clone();
                    for (f, v) in q.group_by.iter().zip(&row.group) {
                        match f {
                            GroupField::Status => lq.status = v.as_deref().and_then(Status::parse),
                            GroupField::SourceRegion => lq.source_region = v.clone(),
                            GroupField::DestinationRegion => lq.destination_region = v.clone(),
                        }
                    }
                    if let (Some(start), Some(i)) = (row.start, q.interval) {
                        let end = Micros(i.start(start).0 + match i { Interval::Hour => HOUR, Interval::Day => 24 * HOUR });
                        lq.created = Window {
                            after: Some(q.created.after.map_or(start, |a| a.max(start))),
                            before: Some(q.created.before.map_or(end, |b| b.min(end))),
                        };
                    }
                    prop_assert_eq!(row.count, list(lq), "{:?} row {:?}", q, row);
                }
            }
        }
    }
}

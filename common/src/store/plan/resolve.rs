//! The first stage of a list request: what it reads. Its filters as the
//! posting lists they name (or checkpoint items, served by their own
//! index), the sort keys that order anything, and the marker record the
//! page follows.

use super::*;

/// A checkpoint-item filter: which side (`None`: either) and the value.
type CheckpointFilter<'q> = (Option<CheckpointSide>, &'q str);

/// The project-scoped filters of `q` as posting lists, and its checkpoint-item
/// filters (served by the global checkpoint index). Destructured so a new
/// filter cannot be silently ignored.
fn filters(q: &ListQuery) -> (Vec<Posting>, Vec<CheckpointFilter<'_>>) {
    let ListQuery {
        destination_region,
        source_region,
        status,
        source_checkpoint_item_id,
        destination_checkpoint_item_id,
        checkpoint_item_id,
        created: _,
        updated: _,
        stuck: _,
        sort: _,
        marker: _,
        offset: _,
        limit: _,
        with_count: _,
    } = q;
    let mut f = Vec::new();
    let mut add = |field, v: Option<&str>| {
        if let Some(v) = v {
            f.push(Posting::new(field, Some(v)));
        }
    };
    add(IndexField::DestinationRegion, destination_region.as_deref());
    add(IndexField::SourceRegion, source_region.as_deref());
    add(IndexField::Status, status.map(Status::as_str));
    // All three route fields: one posting holds exactly their intersection.
    if let (Some(s), Some(d), Some(st)) = (source_region, destination_region, status) {
        f.clear();
        f.push(Posting {
            field: IndexField::Route,
            value: Some(index::route(Some(s), Some(d), st.as_str())),
        });
    }
    let checkpoints = [
        (Some(CheckpointSide::Source), source_checkpoint_item_id),
        (
            Some(CheckpointSide::Destination),
            destination_checkpoint_item_id,
        ),
        (None, checkpoint_item_id),
    ]
    .into_iter()
    .filter_map(|(side, v)| v.as_deref().map(|v| (side, v)))
    .collect();
    (f, checkpoints)
}

/// A list request resolved against one read view.
pub(super) struct Resolved<'q> {
    pub filters: Vec<Posting>,
    pub checkpoints: Vec<CheckpointFilter<'q>>,
    /// The sort keys that order the matches: the request's, less those an
    /// equality filter fixes (checkpoint plans sort by them all).
    pub keys: Vec<SortKey>,
    /// The direction of the final `id` tie-break.
    pub tie: Dir,
    marker: Option<Row>,
}

impl Resolved<'_> {
    /// The marker's place in the page's sort.
    pub(super) fn position(&self) -> Option<Position> {
        let m = self.marker.clone()?;
        Some(Position::new(m, self.keys.clone(), self.tie))
    }
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

    pub(super) fn resolve<'q>(
        &self,
        project: &str,
        q: &'q ListQuery,
    ) -> Result<Resolved<'q>, StoreError> {
        let marker = self.marker(project, q)?;
        let (filters, checkpoints) = filters(q);
        let sort = q.sort_keys();
        let tie = sort.last().map_or(Dir::Desc, |k| k.dir);
        if !checkpoints.is_empty() {
            return Ok(Resolved {
                filters,
                checkpoints,
                keys: sort,
                tie,
                marker,
            });
        }
        // A key fixed by an equality filter orders nothing, unless the marker
        // has another value there (it need not match the filters): then its
        // groups place the marker among the matches. Nothing orders past `id`.
        let marker_has =
            |f: Field, v: Option<&str>| marker.as_ref().is_none_or(|(_, m)| m.get(f) == v);
        let mut keys = Vec::new();
        for k in sort {
            let fixed = match k.field {
                SortField::Status => q
                    .status
                    .is_some_and(|v| marker.as_ref().is_none_or(|(_, m)| m.status() == v)),
                SortField::SourceRegion => {
                    q.source_region.is_some()
                        && marker_has(Field::SourceRegion, q.source_region.as_deref())
                }
                SortField::DestinationRegion => {
                    q.destination_region.is_some()
                        && marker_has(Field::DestinationRegion, q.destination_region.as_deref())
                }
                _ => false,
            };
            if !fixed {
                keys.push(k);
            }
            if k.field == SortField::Id {
                break;
            }
        }
        Ok(Resolved {
            filters,
            checkpoints,
            keys,
            tie,
            marker,
        })
    }
}

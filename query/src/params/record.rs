//! One record's parameters: `as_of` on the record, and the audit trail's
//! paging (`limit`, `marker`) and `as_of`.

use common::instant::Micros;

use super::{each_known, instant, integer};
use crate::error::ApiError;

common::vocabulary! {
    /// The audit trail's paging parameters.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TrailParam {
        Limit = "limit",
        Marker = "marker",
        AsOf = "as_of",
    }
}

common::vocabulary! {
    /// One record's parameters.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RecordParam {
        AsOf = "as_of",
    }
}

/// A page of an audit trail unless `limit` says otherwise, and the most.
pub const TRAIL_DEFAULT_LIMIT: usize = 100;
pub const TRAIL_MAX_LIMIT: usize = 1000;

/// An audit trail's page: at most `limit` events after the one whose
/// `seq` is `marker`, of the trail as of `as_of` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailQuery {
    pub limit: usize,
    pub marker: Option<u64>,
    pub as_of: Option<Micros>,
}

/// Parses the raw query string of an audit-trail request.
pub fn parse_trail(raw: Option<&str>) -> Result<TrailQuery, ApiError> {
    let mut q = TrailQuery {
        limit: TRAIL_DEFAULT_LIMIT,
        marker: None,
        as_of: None,
    };
    each_known(raw, &[], |p: TrailParam, v| {
        match p {
            TrailParam::AsOf => q.as_of = Some(instant(p.as_str(), v)?),
            TrailParam::Limit => {
                let n = integer(p.as_str(), v)?;
                if !(1..=TRAIL_MAX_LIMIT as u64).contains(&n) {
                    return Err(ApiError::invalid(
                        p.as_str(),
                        format!("must be between 1 and {TRAIL_MAX_LIMIT}"),
                    ));
                }
                q.limit = n as usize;
            }
            TrailParam::Marker => q.marker = Some(integer(p.as_str(), v)?),
        }
        Ok(())
    })?;
    Ok(q)
}

/// Parses the raw query string of a one-record request: the time it is
/// asked as of, if any.
pub fn parse_record(raw: Option<&str>) -> Result<Option<Micros>, ApiError> {
    let mut as_of = None;
    each_known(raw, &[], |p: RecordParam, v| {
        match p {
            RecordParam::AsOf => as_of = Some(instant(p.as_str(), v)?),
        }
        Ok(())
    })?;
    Ok(as_of)
}

//! The export's parameters: the list's filters and sort (parsed by the
//! list's own code, so a filter means the same in both), and `format`.

use common::store::export::ExportFormat;
use common::store::ListQuery;
use common::vocab::Word;

use super::{check_list, each_known, echo, set_list_param, ListParam};
use crate::error::ApiError;
use crate::stuck::StuckPolicy;

common::vocabulary! {
    /// The export's query parameters: the list's but its paging
    /// (`limit`, `offset`, `marker`, `with_count`), and `format`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ExportParam {
        DestinationRegion = "destination_region",
        SourceRegion = "source_region",
        Status = "status",
        SourceCheckpointItemId = "source_checkpoint_item_id",
        DestinationCheckpointItemId = "destination_checkpoint_item_id",
        CheckpointItemId = "checkpoint_item_id",
        Sort = "sort",
        CreatedAfter = "created_after",
        CreatedBefore = "created_before",
        UpdatedAfter = "updated_after",
        UpdatedBefore = "updated_before",
        Stuck = "stuck",
        Format = "format",
    }
}

/// Parses the raw query string of an export request: the filters and sort
/// as a list query, and the format (`ndjson` unless given).
pub fn parse_export(
    raw: Option<&str>,
    stuck: &StuckPolicy,
) -> Result<(ListQuery, ExportFormat), ApiError> {
    let mut q = ListQuery::default();
    let mut format = ExportFormat::Ndjson;
    each_known(raw, &[], |p: ExportParam, v| {
        if p == ExportParam::Format {
            format = ExportFormat::parse(v).ok_or_else(|| {
                ApiError::invalid(
                    p.as_str(),
                    format!("`{}` is not one of {}", echo(v), ExportFormat::names()),
                )
            })?;
            return Ok(());
        }
        let list = ListParam::parse(p.as_str()).expect("an export filter is a list parameter");
        set_list_param(&mut q, list, v, stuck)
    })?;
    Ok((check_list(q)?, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every export parameter but `format` is a list parameter (parsed by
    /// the list's code), and the list's others are its paging.
    #[test]
    fn the_export_takes_the_lists_parameters_but_its_paging() {
        for p in ExportParam::ALL {
            if p != ExportParam::Format {
                assert!(ListParam::parse(p.as_str()).is_some(), "{p:?}");
            }
        }
        let paging: Vec<&str> = ListParam::ALL
            .iter()
            .map(|p| p.as_str())
            .filter(|n| ExportParam::parse(n).is_none())
            .collect();
        assert_eq!(paging, ["limit", "offset", "with_count", "marker"]);
    }

    #[test]
    fn bad_parameters_are_named() {
        let policy = StuckPolicy::default();
        let err = |raw: &str| parse_export(Some(raw), &policy).unwrap_err().to_string();
        assert!(
            err("format=xml").contains("format"),
            "{}",
            err("format=xml")
        );
        assert!(err("limit=5").contains("limit"));
        assert!(err("status=nope").contains("status"));
        assert!(
            err("created_after=2024-05-02T00:00:00&created_before=2024-05-01T00:00:00")
                .contains("created_")
        );
        let (q, f) = parse_export(Some("status=fail&format=csv&sort=id:asc"), &policy).unwrap();
        assert_eq!(f, ExportFormat::Csv);
        assert_eq!(q.status, Some(common::record::Status::Fail));
        assert_eq!(parse_export(None, &policy).unwrap().1, ExportFormat::Ndjson);
    }
}

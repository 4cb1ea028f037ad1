//! Query-string parsing for the list endpoint (`docs/api.md`). Hand-rolled
//! rather than serde so that duplicates, empty values and quoted values get
//! the errors the contract asks for, naming the parameter.

use common::instant::Micros;
use common::record::Status;
use common::store::changes::EventId;
use common::store::{
    Dir, GroupField, Interval, ListQuery, SortField, SortKey, SummaryQuery, Window, MAX_LIMIT,
};

use crate::error::ApiError;
use crate::stuck::StuckPolicy;
use common::vocab::Word;

const MAX_SORT_CHARS: usize = 255;

common::vocabulary! {
    /// The list's query parameters (documented by `bodies::ListParams`; a
    /// test keeps the two equal).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ListParam {
        DestinationRegion = "destination_region",
        SourceRegion = "source_region",
        Status = "status",
        SourceCheckpointItemId = "source_checkpoint_item_id",
        DestinationCheckpointItemId = "destination_checkpoint_item_id",
        CheckpointItemId = "checkpoint_item_id",
        Limit = "limit",
        Offset = "offset",
        Sort = "sort",
        WithCount = "with_count",
        CreatedAfter = "created_after",
        CreatedBefore = "created_before",
        UpdatedAfter = "updated_after",
        UpdatedBefore = "updated_before",
        Marker = "marker",
        Stuck = "stuck",
    }
}

common::vocabulary! {
    /// The summaries' query parameters.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum SummaryParam {
        GroupBy = "group_by",
        Interval = "interval",
        SourceRegion = "source_region",
        DestinationRegion = "destination_region",
        Status = "status",
        CreatedAfter = "created_after",
        CreatedBefore = "created_before",
        Stuck = "stuck",
    }
}

common::vocabulary! {
    /// The change feed's query parameters.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FeedParam {
        SourceRegion = "source_region",
        DestinationRegion = "destination_region",
        Status = "status",
        Since = "since",
    }
}

common::vocabulary! {
    /// The operator endpoints' paging parameters.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum PageParam {
        Limit = "limit",
        Offset = "offset",
    }
}

/// `'x'` and `"x"` mean `x` (the seed's own example quotes its values).
fn unquote(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

fn integer(param: &str, v: &str) -> Result<u64, ApiError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(
            param,
            format!("`{}` is not a non-negative integer", echo(v)),
        ));
    }
    v.parse()
        .map_err(|_| ApiError::invalid(param, "the number is too large"))
}

fn echo(v: &str) -> String {
    let mut s: String = v.chars().take(64).collect();
    if s.len() < v.len() {
        s.push('…');
    }
    s
}

/// A window edge: the API's own time format (UTC) or RFC 3339 with an offset.
/// A `+` in an offset arrives as a space when the client did not escape it.
fn instant(param: &str, v: &str) -> Result<Micros, ApiError> {
    Micros::parse_api(&v.replace(' ', "+")).ok_or_else(|| {
        ApiError::invalid(
            param,
            format!(
                "`{}` is not a time (YYYY-MM-DDTHH:MM:SS[.ffffff] in UTC, or RFC 3339 with an offset)",
                echo(v)
            ),
        )
    })
}

/// A window whose edges cross matches nothing: a mistake worth a 400.
fn check_window(w: &Window, after: &str, before: &str) -> Result<(), ApiError> {
    match (w.after, w.before) {
        (Some(a), Some(b)) if a >= b => Err(ApiError::invalid(
            after,
            format!("must be earlier than `{before}` (windows are half-open: after <= t < before)"),
        )),
        _ => Ok(()),
    }
}

pub fn parse_sort(v: &str) -> Result<Vec<SortKey>, ApiError> {
    if v.chars().count() > MAX_SORT_CHARS {
        return Err(ApiError::invalid(
            "sort",
            format!("longer than {MAX_SORT_CHARS} characters"),
        ));
    }
    v.split(',')
        .map(|item| {
            if item.is_empty() {
                return Err(ApiError::invalid("sort", "empty sort item"));
            }
            let (key, dir) = match item.split_once(':') {
                None => (item, Dir::Desc),
                Some((k, "asc")) => (k, Dir::Asc),
                Some((k, "desc")) => (k, Dir::Desc),
                Some((_, d)) => {
                    return Err(ApiError::invalid(
                        "sort",
                        format!("direction `{}` is not asc or desc", echo(d)),
                    ))
                }
            };
            let field = SortField::parse(key).ok_or_else(|| {
                ApiError::invalid(
                    "sort",
                    format!(
                        "unknown sort key `{}` (expected one of {})",
                        echo(key),
                        SortField::names()
                    ),
                )
            })?;
            Ok(SortKey { field, dir })
        })
        .collect()
}

/// Whether `name` is a parameter of any of the tracker's endpoints.
fn a_tracker_parameter(name: &str) -> bool {
    ListParam::parse(name).is_some()
        || SummaryParam::parse(name).is_some()
        || FeedParam::parse(name).is_some()
        || PageParam::parse(name).is_some()
        || TrailParam::parse(name).is_some()
        || RecordParam::parse(name).is_some()
        || ExportParam::parse(name).is_some()
}

/// Calls `f(param, value)` for each known parameter of a query string,
/// values unquoted. A parameter of another endpoint is a 400 naming it (a
/// summary given the list's `updated_after` would answer unfiltered);
/// names no endpoint takes are ignored (the seed example has `offest`). A
/// known one twice is a 400, and so is an empty value unless the parameter
/// is in `may_be_empty`.
fn each_known<P: Word + PartialEq>(
    raw: Option<&str>,
    may_be_empty: &[P],
    mut f: impl FnMut(P, &str) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let mut seen: Vec<P> = Vec::new();
    let pairs = raw.unwrap_or_default().split('&').filter(|p| !p.is_empty());
    for pair in pairs {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        // A name that does not decode is no parameter of ours.
        let Some(name) = url_decode(name) else {
            continue;
        };
        let value = url_decode(value).ok_or_else(|| {
            ApiError::invalid(
                &name,
                "is not percent-encoded UTF-8 (a `%` must be followed by two hex digits)",
            )
        });
        let Some(param) = P::parse(&name) else {
            if a_tracker_parameter(&name) {
                return Err(ApiError::invalid(
                    &name,
                    format!("is not taken by this endpoint, which takes {}", P::names()),
                ));
            }
            continue;
        };
        if seen.contains(&param) {
            return Err(ApiError::DuplicateParameter(param.as_str().to_owned()));
        }
        seen.push(param);
        let value = value?;
        let v = unquote(&value);
        if v.is_empty() && !may_be_empty.contains(&param) {
            return Err(ApiError::EmptyParameter(param.as_str().to_owned()));
        }
        f(param, v)?;
    }
    Ok(())
}

/// A query-string name or value decoded (`+` is a space, `%XX` a byte),
/// or `None` when an escape is malformed (`%ZZ`, a lone `%`) or the bytes
/// are not UTF-8: taken literally, `source_region=%ZZ` matched nothing
/// where `status=%ZZ` was refused.
fn url_decode(s: &str) -> Option<String> {
    percent_decode(s, true)
}

/// A path segment decoded as [`url_decode`] does a query string, but for
/// `+`, which a path keeps.
pub(crate) fn path_decode(s: &str) -> Option<String> {
    percent_decode(s, false)
}

fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' if plus_is_space => b' ',
            b'%' => {
                let hi = hex(bytes.next()?)?;
                let lo = hex(bytes.next()?)?;
                (hi * 16 + lo) as u8
            }
            b => b,
        });
    }
    String::from_utf8(out).ok()
}

fn status(v: &str) -> Result<Status, ApiError> {
    Status::parse(v).ok_or_else(|| {
        ApiError::invalid(
            "status",
            format!("`{}` is not one of {}", echo(v), Status::names()),
        )
    })
}

fn boolean(param: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::invalid(
            param,
            format!("`{}` is not true or false", echo(v)),
        )),
    }
}

/// Parses the raw query string of a list request; `stuck` is resolved by
/// the policy (its thresholds and clock).
pub fn parse_list(raw: Option<&str>, stuck: &StuckPolicy) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery::default();
    each_known(raw, &[], |p: ListParam, v| {
        set_list_param(&mut q, p, v, stuck)
    })?;
    check_list(q)
}

/// Sets one list parameter of `q` from its value.
fn set_list_param(
    q: &mut ListQuery,
    p: ListParam,
    v: &str,
    stuck: &StuckPolicy,
) -> Result<(), ApiError> {
    let (param, text) = (p.as_str(), Some(v.to_owned()));
    match p {
        ListParam::DestinationRegion => q.destination_region = text,
        ListParam::SourceRegion => q.source_region = text,
        ListParam::SourceCheckpointItemId => q.source_checkpoint_item_id = text,
        ListParam::DestinationCheckpointItemId => q.destination_checkpoint_item_id = text,
        ListParam::CheckpointItemId => q.checkpoint_item_id = text,
        ListParam::Status => q.status = Some(status(v)?),
        ListParam::Limit => {
            let n = integer(param, v)?;
            if !(1..=MAX_LIMIT as u64).contains(&n) {
                return Err(ApiError::invalid(
                    param,
                    format!("must be between 1 and {MAX_LIMIT}"),
                ));
            }
            q.limit = Some(n as usize);
        }
        ListParam::Offset => {
            q.offset = Some(
                usize::try_from(integer(param, v)?)
                    .map_err(|_| ApiError::invalid(param, "too large"))?,
            )
        }
        ListParam::Sort => q.sort = Some(parse_sort(v)?),
        ListParam::WithCount => q.with_count = Some(boolean(param, v)?),
        ListParam::Stuck => q.stuck = Some(stuck.resolve(boolean(param, v)?)),
        ListParam::CreatedAfter => q.created.after = Some(instant(param, v)?),
        ListParam::CreatedBefore => q.created.before = Some(instant(param, v)?),
        ListParam::UpdatedAfter => q.updated.after = Some(instant(param, v)?),
        ListParam::UpdatedBefore => q.updated.before = Some(instant(param, v)?),
        ListParam::Marker => q.marker = text,
    }
    Ok(())
}

/// The checks across a list query's parameters.
fn check_list(q: ListQuery) -> Result<ListQuery, ApiError> {
    check_window(&q.created, "created_after", "created_before")?;
    check_window(&q.updated, "updated_after", "updated_before")?;
    if q.marker.is_some() && q.offset.is_some() {
        return Err(ApiError::invalid(
            "marker",
            "`marker` and `offset` cannot be combined: a marker already says where the page starts",
        ));
    }
    Ok(q)
}

/// Parses the raw query string of a summaries request.
pub fn parse_summary(raw: Option<&str>, stuck: &StuckPolicy) -> Result<SummaryQuery, ApiError> {
    let mut q = SummaryQuery::default();
    // `group_by=` (empty) means one group.
    each_known(raw, &[SummaryParam::GroupBy], |p, v| {
        let param = p.as_str();
        match p {
            SummaryParam::GroupBy if v.is_empty() => {}
            SummaryParam::GroupBy => {
                for name in v.split(',') {
                    let f = GroupField::parse(name).ok_or_else(|| {
                        ApiError::invalid(
                            param,
                            format!("`{}` is not one of {}", echo(name), GroupField::names()),
                        )
                    })?;
                    if q.group_by.contains(&f) {
                        return Err(ApiError::invalid(
                            param,
                            format!("`{}` is given twice", f.as_str()),
                        ));
                    }
                    q.group_by.push(f);
                }
            }
            SummaryParam::Interval => {
                q.interval = Some(Interval::parse(v).ok_or_else(|| {
                    ApiError::invalid(
                        param,
                        format!("`{}` is not one of {}", echo(v), Interval::names()),
                    )
                })?)
            }
            SummaryParam::SourceRegion => q.source_region = Some(v.to_owned()),
            SummaryParam::DestinationRegion => q.destination_region = Some(v.to_owned()),
            SummaryParam::Status => q.status = Some(status(v)?),
            SummaryParam::CreatedAfter => q.created.after = Some(instant(param, v)?),
            SummaryParam::CreatedBefore => q.created.before = Some(instant(param, v)?),
            SummaryParam::Stuck => q.stuck = Some(stuck.resolve(boolean(param, v)?)),
        }
        Ok(())
    })?;
    check_window(&q.created, "created_after", "created_before")?;
    Ok(q)
}

/// What a change-feed client asks for: the list's region/status filters and
/// where to resume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedQuery {
    pub source_region: Option<String>,
    pub destination_region: Option<String>,
    pub status: Option<Status>,
    /// The last change the client received (`since`, or `Last-Event-ID`).
    pub since: Option<u64>,
    /// The store that change came from, when its id named one.
    pub since_feed: Option<String>,
}

/// Parses the raw query string of a change-feed request; `last_event_id`
/// is the `Last-Event-ID` header, which wins over `since` (a reconnecting
/// browser sends the header with the URL it first used).
pub fn parse_feed(raw: Option<&str>, last_event_id: Option<&str>) -> Result<FeedQuery, ApiError> {
    let mut q = FeedQuery::default();
    each_known(raw, &[], |p: FeedParam, v| {
        match p {
            FeedParam::SourceRegion => q.source_region = Some(v.to_owned()),
            FeedParam::DestinationRegion => q.destination_region = Some(v.to_owned()),
            FeedParam::Status => q.status = Some(status(v)?),
            FeedParam::Since => q.set_since(event_id(p.as_str(), v)?),
        }
        Ok(())
    })?;
    if let Some(v) = last_event_id {
        q.set_since(event_id("Last-Event-ID", v.trim())?);
    }
    Ok(q)
}

impl FeedQuery {
    fn set_since(&mut self, id: EventId<'_>) {
        self.since = Some(id.seq);
        self.since_feed = id.feed.map(str::to_owned);
    }
}

/// A change id as the feed sends it (`feed-seq`), or a bare change number.
fn event_id<'a>(param: &'static str, v: &'a str) -> Result<EventId<'a>, ApiError> {
    EventId::parse(v).ok_or_else(|| {
        ApiError::invalid(
            param,
            "not a change id (the `id` of a change event, or its number)",
        )
    })
}

/// `limit`/`offset` of the operator endpoints.
pub fn parse_page(raw: Option<&str>, max: usize) -> Result<(usize, usize), ApiError> {
    let (mut limit, mut offset) = (None, None);
    each_known(raw, &[], |p: PageParam, v| {
        let n = Some(integer(p.as_str(), v)?);
        match p {
            PageParam::Limit => limit = n,
            PageParam::Offset => offset = n,
        }
        Ok(())
    })?;
    let limit = limit.unwrap_or(100);
    if !(1..=max as u64).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {max}"),
        ));
    }
    Ok((
        limit as usize,
        usize::try_from(offset.unwrap_or(0))
            .map_err(|_| ApiError::invalid("offset", "too large"))?,
    ))
}

mod export;
mod record;
pub use export::{parse_export, ExportParam};
pub use record::{
    parse_record, parse_trail, RecordParam, TrailParam, TrailQuery, TRAIL_DEFAULT_LIMIT,
    TRAIL_MAX_LIMIT,
};

#[cfg(test)]
mod tests;

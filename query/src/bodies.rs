//! The API's bodies and documented parameters: every response type, and the
//! query parameters as the OpenAPI document describes them (`params.rs`
//! parses them). Handlers and the OpenAPI document both use these.

use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use common::store::EventEffect;
use common::{Record, Status};

/// `GET …/replication_records`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListBody {
    pub replication_records: Vec<Record>,
    /// Only with `with_count=true`: matches ignoring limit, offset and marker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// When the page is full and more records follow: the last record's id,
    /// to pass as `marker` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// One non-empty group of one bucket. A field is present when it is in
/// `group_by` (regions may be `null`: not yet known); `start` with an
/// `interval`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable)]
    pub source_region: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable)]
    pub destination_region: Option<Option<String>>,
    /// The bucket's start (UTC, by `created_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    pub count: u64,
}

/// `GET …/replication_summaries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummariesBody {
    /// Buckets in time order; within one, groups by value (`null` first).
    pub summaries: Vec<SummaryItem>,
    /// The sum of the counts: the list's `count` with the same filters.
    pub total: u64,
}

/// A region and where its records are replicated to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionBody {
    pub name: String,
    pub replication_destinations: Vec<String>,
}

/// `GET …/replication_capabilities`: the seed's `region` structure.
#[derive(Debug, Serialize, ToSchema)]
pub struct CapabilitiesBody {
    /// Sorted by name.
    pub regions: Vec<RegionBody>,
}

/// Query parameters of the summaries endpoint (parsed by `params.rs`).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SummaryParams {
    /// Comma-separated, distinct: `status`, `source_region`,
    /// `destination_region`; empty or absent: one group.
    #[param(
        pattern = r"^((status|source_region|destination_region)(,(status|source_region|destination_region)){0,2})?$"
    )]
    group_by: Option<String>,
    /// `hour` or `day` buckets by `created_at` (UTC); absent: one bucket.
    interval: Option<SummaryInterval>,
    /// Exact match.
    #[param(min_length = 1, max_length = 128)]
    source_region: Option<String>,
    /// Exact match.
    #[param(min_length = 1, max_length = 128)]
    destination_region: Option<String>,
    status: Option<Status>,
    /// As on the list.
    created_after: Option<Time>,
    /// As on the list.
    created_before: Option<Time>,
    /// As on the list.
    stuck: Option<bool>,
}

#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SummaryInterval {
    Hour,
    Day,
}

/// The change feed's filters and resume point.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FeedParams {
    /// Only records with this source region (after the change).
    #[param(min_length = 1, max_length = 128)]
    source_region: Option<String>,
    /// Only records with this destination region (after the change).
    #[param(min_length = 1, max_length = 128)]
    destination_region: Option<String>,
    /// Only records with this status (after the change).
    status: Option<Status>,
    /// The last change received (its event id, `<feed>-<seq>`, or its
    /// number): resume after it. `Last-Event-ID` wins.
    #[param(pattern = r"^([0-9a-fA-F]+-)?[0-9]+$")]
    since: Option<String>,
}

/// The projects the token may read that have records, sorted.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectsBody {
    pub projects: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordBody {
    pub replication_record: Record,
}

/// One accepted event of a record, as received.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventBody {
    pub seq: u64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub effect: EventEffect,
    pub changed: bool,
    /// The event as published.
    #[schema(value_type = Object)]
    pub event: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventsBody {
    pub record_id: String,
    pub events: Vec<EventBody>,
    /// When more events follow: the `seq` of this page's last one, the
    /// `marker` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// `limit`/`marker` of a record's audit trail.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TrailParams {
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `seq` of the last event of the page before (its `next_marker`):
    /// the page continues after it, in arrival order.
    #[param(minimum = 0)]
    marker: Option<u64>,
    /// The trail as of this time: only its events that occurred before it
    /// (`occurred_at`), in arrival order.
    as_of: Option<Time>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantinedBody {
    pub seq: u64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason_code: String,
    pub reason: String,
    pub key: Option<String>,
    pub raw: String,
    /// `utf8` or `base64`.
    pub raw_encoding: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineBody {
    pub quarantined: Vec<QuarantinedBody>,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointBody {
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DigestBody {
    pub digest: String,
    /// Per project this node lists (a listing shard: the projects of its
    /// partitions), SHA-256 over its records as the API renders them, in id
    /// order.
    pub projects: std::collections::BTreeMap<String, String>,
    /// SHA-256 over `project digest` lines: a cluster's, joined over its
    /// shards (`/v1/admin/cluster/digest`), equals a single node's.
    pub listings_digest: String,
    /// A fold worker's: changelog messages published, written with the
    /// checkpoints of the batches they came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changelog_published: Option<u64>,
    pub records: u64,
    pub events_applied: u64,
    pub events_duplicate: u64,
    pub events_quarantined: u64,
    pub checkpoints: Vec<CheckpointBody>,
    /// Offset gaps an operator accepted (`tracker accept-gap`): ranges of the
    /// topic this projection never applied.
    pub accepted_gaps: Vec<AcceptedGapBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedGapBody {
    pub topic: String,
    pub partition: i32,
    /// `retention_gap` or `topic_reset`.
    pub kind: String,
    /// The first offset never applied.
    pub from: i64,
    /// Where ingest resumed; null when the partition was gone.
    pub resumed_at: Option<i64>,
    pub accepted_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LiveBody {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyBody {
    pub ready: bool,
    /// `open`, `unavailable` (cannot be read), or `error` (ingest's writes
    /// fail: see `store_error`).
    pub store: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// With ingest: partitions held at an offset gap, not consumed until an
    /// operator accepts the gap (`tracker accept-gap`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<GapBody>,
    /// With ingest: `connecting`, `up` or `down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// With ingest: `present`, or `missing` when the broker has no such topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<i64>,
    /// With ingest: whether it has reached the head of the topic at least
    /// once since start-up (never true merely because the grace elapsed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caught_up_once: Option<bool>,
    /// With ingest: `waiting` (start-up: lists answer 503 `TRK.NOT_READY`),
    /// `caught_up` (ingest reached the head once) or `grace_elapsed` (the
    /// start-up grace ran out first: the projection is served as it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_up: Option<String>,
}

/// A partition held at an offset gap.
#[derive(Debug, Serialize, ToSchema)]
pub struct GapBody {
    pub partition: i32,
    /// `retention_gap` or `topic_reset`.
    pub kind: String,
    /// The next offset the store would apply.
    pub checkpoint: i64,
    /// The partition's low and high watermarks when the gap was seen;
    /// absent when the partition no longer exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermarks: Option<[i64; 2]>,
    pub detail: String,
}

/// Every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(min_length = 8, max_length = 36)]
    pub error_code: String,
    #[schema(min_length = 2, max_length = 512)]
    pub error_msg: String,
}

/// Query parameters of the list endpoint (parsed by `params.rs`; described here).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Exact match.
    #[param(min_length = 1, max_length = 128)]
    destination_region: Option<String>,
    /// Exact match.
    #[param(min_length = 1, max_length = 128)]
    source_region: Option<String>,
    status: Option<Status>,
    /// Exact match.
    #[param(min_length = 1, max_length = 128)]
    source_checkpoint_item_id: Option<String>,
    /// Exact match.
    #[param(min_length = 1, max_length = 128)]
    destination_checkpoint_item_id: Option<String>,
    /// Matches the source or the destination checkpoint item id.
    #[param(min_length = 1, max_length = 128)]
    checkpoint_item_id: Option<String>,
    /// 1-1000, default 1000.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Default 0.
    #[param(minimum = 0)]
    offset: Option<u64>,
    /// `key[:asc|desc],...`; default `created_at:desc`.
    #[param(
        max_length = 255,
        pattern = r"^(created_at|updated_at|status|id|source_region|destination_region|plan_id)(:(asc|desc))?(,(created_at|updated_at|status|id|source_region|destination_region|plan_id)(:(asc|desc))?)*$"
    )]
    sort: Option<String>,
    with_count: Option<bool>,
    /// Records created at or after this time. `YYYY-MM-DDTHH:MM:SS[.ffffff]`
    /// (UTC, the API's own format) or RFC 3339 with an offset.
    created_after: Option<Time>,
    /// Records created strictly before this time; must be later than
    /// `created_after`.
    created_before: Option<Time>,
    /// Records whose last event is at or after this time.
    updated_after: Option<Time>,
    /// Records whose last event is strictly before this time.
    updated_before: Option<Time>,
    /// The id of the last record of the previous page (its `next_marker`):
    /// the page continues right after it in the requested sort. Must be
    /// listed under the project; excludes `offset`.
    #[param(min_length = 1, max_length = 128)]
    marker: Option<String>,
    /// `true`: only records replicating or waiting with no event for longer
    /// than their status's threshold (`[stuck]` in the config); `false`:
    /// none of those.
    stuck: Option<bool>,
}

/// The export's parameters: the list's filters and sort, and the format
/// (a test keeps them equal to `params::ExportParam`).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ExportParams {
    /// Exact match.
    #[param(min_length = 1, max_length = 128)]
    destination_region: Option<String>,
    /// Exact match.
    #[param(min_length = 1, max_length = 128)]
    source_region: Option<String>,
    status: Option<Status>,
    /// Exact match.
    #[param(min_length = 1, max_length = 128)]
    source_checkpoint_item_id: Option<String>,
    /// Exact match.
    #[param(min_length = 1, max_length = 128)]
    destination_checkpoint_item_id: Option<String>,
    /// Matches the source or the destination checkpoint item id.
    #[param(min_length = 1, max_length = 128)]
    checkpoint_item_id: Option<String>,
    /// As the list's; default `created_at:desc`.
    #[param(
        max_length = 255,
        pattern = r"^(created_at|updated_at|status|id|source_region|destination_region|plan_id)(:(asc|desc))?(,(created_at|updated_at|status|id|source_region|destination_region|plan_id)(:(asc|desc))?)*$"
    )]
    sort: Option<String>,
    created_after: Option<Time>,
    created_before: Option<Time>,
    updated_after: Option<Time>,
    updated_before: Option<Time>,
    stuck: Option<bool>,
    /// `ndjson` (default) or `csv`.
    #[param(pattern = r"^(ndjson|csv)$")]
    format: Option<String>,
}

/// A request timestamp: the API's own format (UTC) or RFC 3339 with an
/// offset (parsed by `Micros::parse_api`).
#[derive(Debug, ToSchema)]
#[schema(
    pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?$",
    example = "2024-05-01T00:00:00"
)]
#[allow(dead_code)]
pub struct Time(String);

/// `limit`/`offset` of the operator lists.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    #[param(minimum = 0)]
    offset: Option<u64>,
}

//! The record and the pure fold (`docs/events.md`, "The fold").
//!
//! [`RecordState`] is a function of the SET of distinct events seen for a
//! record: it keeps the order key of every distinct event (sorted, so the state
//! does not remember arrival order) and, per projected value, a reference to the
//! event that wins it. Applying the same events in any order, with any
//! duplicates, gives byte-identical state.

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventType};
pub use crate::identity::{Field, Identity};
use crate::instant::Micros;

crate::vocabulary! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum Status {
        Replicating = "replicating",
        Success = "success",
        Fail = "fail",
        Skip = "skip",
        WaitingReplicate = "waiting_replicate",
    }
}

impl Status {
    fn of(kind: EventType) -> Status {
        match kind {
            EventType::Queued => Status::WaitingReplicate,
            EventType::Started | EventType::Progress => Status::Replicating,
            EventType::Succeeded => Status::Success,
            EventType::Failed => Status::Fail,
            EventType::Skipped => Status::Skip,
        }
    }
}

/// Order key of an event: `K(e) = (attempt, occurred_at, event_id)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub attempt: u32,
    pub at: Micros,
    pub event_id: String,
}

/// The event that decides `status` (and the fail fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StatusWin {
    stamp: u32,
    kind: EventType,
    fail_code: Option<String>,
    fail_reason: Option<String>,
}

/// Fold state of one record. Indices point into `stamps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordState {
    stamps: Vec<Stamp>,
    status: StatusWin,
    max_attempt: u32,
    top_progress: Option<u8>,
    fields: [Option<(u32, String)>; 9],
    auto_trigger: Option<(u32, bool)>,
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Its `event_id` was already applied to this record: nothing changes.
    Duplicate,
    /// A new event; `changed` says whether the visible record changed.
    New { changed: bool },
}

impl RecordState {
    /// The state after the first event of a record.
    pub fn new(e: &Event) -> RecordState {
        let mut s = RecordState {
            stamps: Vec::new(),
            status: StatusWin {
                stamp: 0,
                kind: e.kind,
                fail_code: None,
                fail_reason: None,
            },
            max_attempt: 0,
            top_progress: None,
            fields: Default::default(),
            auto_trigger: None,
        };
        s.apply(e);
        s
    }

    /// The fold step. Pure: the result depends only on the set of events.
    pub fn apply(&mut self, e: &Event) -> Applied {
        if self.stamps.iter().any(|s| s.event_id == e.event_id) {
            return Applied::Duplicate;
        }
        let before = self.visible();
        let mut field_changed = false;
        let stamp = Stamp {
            attempt: e.attempt,
            at: e.occurred_at,
            event_id: e.event_id.clone(),
        };
        let pos = self.stamps.binary_search(&stamp).unwrap_or_else(|p| p);
        self.stamps.insert(pos, stamp);
        let pos = pos as u32;
        let first = self.stamps.len() == 1;
        // Shift references past the insertion point so they keep naming their event.
        let bump = |i: &mut u32| {
            if *i >= pos && !first {
                *i += 1
            }
        };
        bump(&mut self.status.stamp);
        for (i, _) in self.fields.iter_mut().flatten() {
            bump(i);
        }
        if let Some((i, _)) = &mut self.auto_trigger {
            bump(i);
        }

        if first
            || self.status_key(pos, e.kind) > self.status_key(self.status.stamp, self.status.kind)
        {
            self.status = StatusWin {
                stamp: pos,
                kind: e.kind,
                fail_code: e.fail_code.clone(),
                fail_reason: e.fail_reason.clone(),
            };
        }
        if e.attempt > self.max_attempt {
            self.max_attempt = e.attempt;
            self.top_progress = e.progress;
        } else if e.attempt == self.max_attempt {
            self.top_progress = self.top_progress.max(e.progress);
        }
        // Last writer wins per field by K(e); stamps are sorted by K, so a higher
        // index is a later writer.
        for (slot, value) in self.fields.iter_mut().zip(&e.identity.fields) {
            if let Some(v) = value {
                if slot.as_ref().is_none_or(|(i, _)| pos > *i) {
                    field_changed |= slot.as_ref().is_none_or(|(_, old)| old != v);
                    *slot = Some((pos, v.clone()));
                }
            }
        }
        if let Some(b) = e.identity.auto_trigger {
            if self.auto_trigger.is_none_or(|(i, _)| pos > i) {
                self.auto_trigger = Some((pos, b));
            }
        }
        Applied::New {
            changed: field_changed || before != self.visible(),
        }
    }

    /// `(attempt, rank, occurred_at, event_id)` of the event at `i`.
    fn status_key(&self, i: u32, kind: EventType) -> (u32, u8, Micros, &str) {
        let s = &self.stamps[i as usize];
        (s.attempt, kind.rank(), s.at, &s.event_id)
    }

    pub fn get(&self, f: Field) -> Option<&str> {
        self.fields[f as usize].as_ref().map(|(_, v)| v.as_str())
    }

    pub fn status(&self) -> Status {
        Status::of(self.status.kind)
    }

    pub fn created_at(&self) -> Micros {
        self.stamps.iter().map(|s| s.at).min().unwrap_or(Micros(0))
    }

    pub fn updated_at(&self) -> Micros {
        self.stamps.iter().map(|s| s.at).max().unwrap_or(Micros(0))
    }

    /// Projects the record is listed under (source and destination, deduplicated).
    pub fn projects(&self) -> Vec<&str> {
        let mut ps: Vec<&str> = [Field::SourceProjectId, Field::DestinationProjectId]
            .into_iter()
            .filter_map(|f| self.get(f))
            .collect();
        ps.dedup();
        ps
    }

    pub fn progress(&self) -> u8 {
        if self.status.kind == EventType::Succeeded {
            100
        } else {
            self.top_progress.unwrap_or(0)
        }
    }

    /// `extra_info.fail_code`: the status event's, when it is `failed`.
    fn fail_code(&self) -> String {
        let s = &self.status;
        match s.kind {
            EventType::Failed => s.fail_code.clone().unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// `extra_info.fail_reason`: the status event's, when it is `failed` or
    /// `skipped`.
    fn fail_reason(&self) -> String {
        let s = &self.status;
        match s.kind {
            EventType::Failed | EventType::Skipped => s.fail_reason.clone().unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Everything visible in the record except the identity fields (tracked
    /// separately by `apply`): cheap to compare before and after an event.
    fn visible(&self) -> (Status, u8, Micros, Micros, bool, String, String) {
        (
            self.status(),
            self.progress(),
            self.created_at(),
            self.updated_at(),
            self.auto_trigger.is_some_and(|(_, b)| b),
            self.fail_code(),
            self.fail_reason(),
        )
    }

    /// The record as the API shows it.
    pub fn view(&self, id: &str) -> Record {
        let shown = self.shown();
        shown.with(id.to_owned(), |f| self.get(f).map(str::to_owned))
    }

    /// [`RecordState::view`] of a state read only to be shown: its strings
    /// are moved into the record, not copied (a page of 1,000 records
    /// spent a seventh of its time copying them).
    pub fn into_view(mut self, id: String) -> Record {
        let shown = self.shown();
        shown.with(id, |f| self.fields[f as usize].take().map(|(_, v)| v))
    }

    /// What the API shows besides the fields.
    fn shown(&self) -> Shown {
        Shown {
            status: self.status(),
            created_at: self.created_at().render(),
            updated_at: self.updated_at().render(),
            extra_info: ExtraInfo {
                auto_trigger: self.auto_trigger.is_some_and(|(_, b)| b),
                progress: self.progress(),
                fail_reason: self.fail_reason(),
                fail_code: self.fail_code(),
            },
        }
    }

    /// How many distinct events were folded into the record: its version,
    /// which only grows (the cluster's changelog orders states by it).
    pub fn events(&self) -> u64 {
        self.stamps.len() as u64
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("record state always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<RecordState, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// A record's shown values besides its fields, and the one place the
/// fields are laid out in a [`Record`] (by copy or by move).
struct Shown {
    status: Status,
    created_at: String,
    updated_at: String,
    extra_info: ExtraInfo,
}

impl Shown {
    fn with(self, id: String, mut g: impl FnMut(Field) -> Option<String>) -> Record {
        Record {
            id,
            source_region: g(Field::SourceRegion),
            source_project_id: g(Field::SourceProjectId),
            source_checkpoint_id: g(Field::SourceCheckpointId),
            source_checkpoint_item_id: g(Field::SourceCheckpointItemId),
            destination_region: g(Field::DestinationRegion),
            destination_project_id: g(Field::DestinationProjectId),
            destination_checkpoint_id: g(Field::DestinationCheckpointId),
            destination_checkpoint_item_id: g(Field::DestinationCheckpointItemId),
            status: self.status,
            plan_id: g(Field::PlanId),
            created_at: self.created_at,
            updated_at: self.updated_at,
            extra_info: self.extra_info,
        }
    }
}

/// One replication record, field for field as the seed API shows it. Unknown
/// strings are `null`, never omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Record {
    pub id: String,
    pub source_region: Option<String>,
    pub source_project_id: Option<String>,
    pub source_checkpoint_id: Option<String>,
    pub source_checkpoint_item_id: Option<String>,
    pub destination_region: Option<String>,
    pub destination_project_id: Option<String>,
    pub destination_checkpoint_id: Option<String>,
    pub destination_checkpoint_item_id: Option<String>,
    pub status: Status,
    pub plan_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub extra_info: ExtraInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExtraInfo {
    pub auto_trigger: bool,
    pub progress: u8,
    pub fail_reason: String,
    pub fail_code: String,
}

/// Folds a whole set of events (in the given order) into a state: the reference
/// the tests and `verify` compare the store against.
pub fn fold_all<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<RecordState> {
    let mut state: Option<RecordState> = None;
    for e in events {
        match &mut state {
            Some(s) => {
                s.apply(e);
            }
            None => state = Some(RecordState::new(e)),
        }
    }
    state
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::decode;
    use proptest::prelude::*;

    pub(crate) const SPEC_EVENTS: [&str; 4] = [
        r#"{"schema_version":1,"event_id":"e-1","type":"queued","record_id":"30b97bac-532c-4c51-96fa-4b3a32253c12","occurred_at":"2018-06-14T11:14:48.946Z","record":{"source_region":"region-1","source_project_id":"e0b97bac-532c-4c51-96fa-4b3a32253be4","source_checkpoint_id":"45899f0e-1c07-49db-8bb9-03e0de298152","source_checkpoint_item_id":"45899f0e-1c07-49db-8bb9-03e0de2981123","destination_region":"region-2","destination_project_id":"45899f0e-1c07-49db-8bb9-03e0de2981123","plan_id":"45899f0e-1c07-49db-8bb9-03e0de298152","auto_trigger":true}}"#,
        r#"{"schema_version":1,"event_id":"e-2","type":"started","record_id":"30b97bac-532c-4c51-96fa-4b3a32253c12","occurred_at":"2018-06-14T11:15:02Z","progress":0}"#,
        r#"{"schema_version":1,"event_id":"e-3","type":"progress","record_id":"30b97bac-532c-4c51-96fa-4b3a32253c12","occurred_at":"2018-06-14T11:20:00Z","progress":55}"#,
        r#"{"schema_version":1,"event_id":"e-4","type":"succeeded","record_id":"30b97bac-532c-4c51-96fa-4b3a32253c12","occurred_at":"2018-06-14T11:31:40Z","record":{"destination_checkpoint_id":"40129f0e-1c07-49db-8bb9-03e0de298152","destination_checkpoint_item_id":"411119f0e-1c07-49db-8bb9-03e0de298152"}}"#,
    ];

    fn spec_events() -> Vec<Event> {
        SPEC_EVENTS
            .iter()
            .map(|s| decode(None, Some(s.as_bytes())).unwrap())
            .collect()
    }

    #[test]
    fn seed_response_example_from_the_four_spec_events() {
        let events = spec_events();
        let id = "30b97bac-532c-4c51-96fa-4b3a32253c12";
        let expected = serde_json::json!({
            "id": id,
            "source_region": "region-1",
            "source_project_id": "e0b97bac-532c-4c51-96fa-4b3a32253be4",
            "source_checkpoint_id": "45899f0e-1c07-49db-8bb9-03e0de298152",
            "source_checkpoint_item_id": "45899f0e-1c07-49db-8bb9-03e0de2981123",
            "destination_region": "region-2",
            "destination_project_id": "45899f0e-1c07-49db-8bb9-03e0de2981123",
            "destination_checkpoint_id": "40129f0e-1c07-49db-8bb9-03e0de298152",
            "destination_checkpoint_item_id": "411119f0e-1c07-49db-8bb9-03e0de298152",
            "status": "success",
            "plan_id": "45899f0e-1c07-49db-8bb9-03e0de298152",
            "created_at": "2018-06-14T11:14:48.946000",
            "updated_at": "2018-06-14T11:31:40.000000",
            "extra_info": {"auto_trigger": true, "progress": 100, "fail_reason": "", "fail_code": ""}
        });
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let s = fold_all(order.iter().map(|&i| &events[i])).unwrap();
            assert_eq!(serde_json::to_value(s.view(id)).unwrap(), expected);
        }
    }

    #[test]
    fn terminal_wins_within_attempt_and_retry_reopens() {
        let ev = |id: &str, t: &str, at: &str, attempt: u32| {
            decode(None, Some(format!(r#"{{"schema_version":1,"event_id":"{id}","type":"{t}","record_id":"r","occurred_at":"{at}","attempt":{attempt},"fail_code":"E1","fail_reason":"disk","progress":30}}"#).as_bytes())).unwrap()
        };
        let failed = ev("a", "failed", "2020-01-01T00:00:00Z", 1);
        let late_progress = ev("b", "progress", "2020-01-01T00:05:00Z", 1);
        let s = fold_all([&failed, &late_progress]).unwrap();
        assert_eq!(s.status(), Status::Fail);
        assert_eq!(s.view("r").extra_info.fail_code, "E1");
        let retry = ev("c", "started", "2020-01-01T00:01:00Z", 2);
        let s = fold_all([&failed, &late_progress, &retry]).unwrap();
        assert_eq!(s.status(), Status::Replicating);
        assert_eq!(s.view("r").extra_info.fail_code, "");
        assert_eq!(s.updated_at().render(), "2020-01-01T00:05:00.000000");
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        let opt = |vals: &'static [&'static str]| {
            proptest::option::of(proptest::sample::select(vals).prop_map(str::to_owned))
        };
        (
            0u8..12,
            proptest::sample::select(EventType::ALL.to_vec()),
            1u32..4,
            0i64..6,
            proptest::option::of(0u8..=100),
            [
                opt(&["r1", "r2"]),
                opt(&["p1", "p2"]),
                opt(&["c1"]),
                opt(&["i1", "i2"]),
                opt(&["r1", "r3"]),
                opt(&["p2", "p3"]),
                opt(&["c2"]),
                opt(&["i2", "i3"]),
                opt(&["plan1", "plan2"]),
            ],
            proptest::option::of(any::<bool>()),
            proptest::option::of(opt(&["E1", "E2"])),
        )
            .prop_map(
                |(id, kind, attempt, at, progress, fields, auto, fail)| Event {
                    event_id: format!("e{id}"),
                    kind,
                    record_id: "r".into(),
                    occurred_at: Micros(at * 1_000_000),
                    attempt,
                    identity: Identity {
                        fields,
                        auto_trigger: auto,
                    },
                    progress,
                    fail_code: fail.flatten(),
                    fail_reason: Some("why".into()),
                },
            )
    }

    proptest! {
        /// For random event sets, every permutation with random duplicates folds
        /// to byte-identical state and record.
        #[test]
        fn fold_converges(events in proptest::collection::vec(arb_event(), 1..10),
                          perm in proptest::collection::vec(any::<u64>(), 0..30)) {
            // Distinct by event_id: an event_id names one event.
            let mut distinct: Vec<Event> = Vec::new();
            for e in events { if !distinct.iter().any(|d| d.event_id == e.event_id) { distinct.push(e); } }
            let reference = fold_all(&distinct).unwrap();
            let mut shuffled: Vec<&Event> = distinct.iter().collect();
            for (i, r) in perm.iter().enumerate() {
                let n = shuffled.len();
                if i % 3 == 0 { shuffled.push(&distinct[(*r as usize) % distinct.len()]); }
                else { shuffled.swap(i % n, (*r as usize) % n); }
            }
            let other = fold_all(shuffled.iter().copied()).unwrap();
            prop_assert_eq!(reference.encode(), other.encode());
            // And the independent reference fold agrees, field for field.
            prop_assert_eq!(Some(other.view("r")), crate::testkit::reference::fold("r", &shuffled));
            // A state moved into its view shows what its view does.
            prop_assert_eq!(other.clone().into_view("r".into()), other.view("r"));
            // `changed` means exactly "the rendered record differs".
            let mut state = RecordState::new(&distinct[0]);
            for e in &distinct[1..] {
                let before = state.view("r");
                let applied = state.apply(e);
                prop_assert_eq!(applied, Applied::New { changed: before != state.view("r") });
            }
            prop_assert_eq!(serde_json::to_vec(&reference.view("r")).unwrap(), serde_json::to_vec(&other.view("r")).unwrap());
        }
    }
}

//! What an event says about its record's identity: the identity fields
//! (regions, projects, checkpoints, plan) and the `record` object that
//! carries some of them. Its own module so that the event side (decoding)
//! and the record side (the fold) both depend on it, not on each other.

/// Identity fields of a record, in the order the API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    SourceRegion,
    SourceProjectId,
    SourceCheckpointId,
    SourceCheckpointItemId,
    DestinationRegion,
    DestinationProjectId,
    DestinationCheckpointId,
    DestinationCheckpointItemId,
    PlanId,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::SourceRegion,
        Field::SourceProjectId,
        Field::SourceCheckpointId,
        Field::SourceCheckpointItemId,
        Field::DestinationRegion,
        Field::DestinationProjectId,
        Field::DestinationCheckpointId,
        Field::DestinationCheckpointItemId,
        Field::PlanId,
    ];

    pub fn name(self) -> &'static str {
        &self.record_path()["record.".len()..]
    }

    /// Path used in quarantine reasons.
    pub fn record_path(self) -> &'static str {
        match self {
            Field::SourceRegion => "record.source_region",
            Field::SourceProjectId => "record.source_project_id",
            Field::SourceCheckpointId => "record.source_checkpoint_id",
            Field::SourceCheckpointItemId => "record.source_checkpoint_item_id",
            Field::DestinationRegion => "record.destination_region",
            Field::DestinationProjectId => "record.destination_project_id",
            Field::DestinationCheckpointId => "record.destination_checkpoint_id",
            Field::DestinationCheckpointItemId => "record.destination_checkpoint_item_id",
            Field::PlanId => "record.plan_id",
        }
    }
}

/// The `record` object of an event: what it carries (absent = not carried).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub fields: [Option<String>; 9],
    pub auto_trigger: Option<bool>,
}

impl Identity {
    pub fn get(&self, f: Field) -> Option<&str> {
        self.fields[f as usize].as_deref()
    }
}

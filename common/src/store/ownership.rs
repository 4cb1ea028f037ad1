//! Which store this is: the layout it was written with and the topic it
//! holds the projection of. A store of another layout or another topic is
//! refused, never reinterpreted.

use super::{keys, Store, StoreError, Totals, LAYOUT, READS_AS_IS, UPGRADES_IN_PLACE};
use crate::instant::Micros;

/// A new store is stamped with [`LAYOUT`]; an existing one must carry it,
/// or one of [`UPGRADES_IN_PLACE`] or [`READS_AS_IS`], which is returned: the
/// caller upgrades it (or not), then stamps it ([`stamp_layout`]). Stores from before the stamp (v1)
/// have data but no stamp.
pub(super) fn check_layout(
    tree: &sled::Tree,
    path: &str,
    writable: bool,
) -> Result<u32, StoreError> {
    let found = match tree.get(keys::META_LAYOUT)? {
        Some(v) => u32::from_be_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| StoreError::corrupt(keys::META_LAYOUT, "bad layout stamp"))?,
        ),
        None if tree.is_empty() => {
            if writable {
                tree.insert(keys::META_LAYOUT, &LAYOUT.to_be_bytes())?;
            }
            LAYOUT
        }
        None => 1,
    };
    if found == LAYOUT || UPGRADES_IN_PLACE.contains(&found) || READS_AS_IS.contains(&found) {
        return Ok(found);
    }
    Err(StoreError::Layout {
        path: path.to_owned(),
        found,
    })
}

/// Stamps an upgraded store with [`LAYOUT`]: an older build then refuses
/// it, rather than misreading it.
pub(super) fn stamp_layout(tree: &sled::Tree) -> Result<(), StoreError> {
    tree.insert(keys::META_LAYOUT, &LAYOUT.to_be_bytes())?;
    Ok(())
}

/// The time a `replay --until` store folds events before, if it is one.
pub(super) fn read_until(tree: &sled::Tree) -> Result<Option<Micros>, StoreError> {
    tree.get(keys::META_UNTIL)?
        .map(|v| {
            let b: [u8; 8] = v
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::corrupt(keys::META_UNTIL, "not an i64"))?;
            Ok(Micros(i64::from_be_bytes(b)))
        })
        .transpose()
}

impl Store {
    /// Makes this (fresh) store the projection as of `t`: from now on it
    /// folds only events that occurred before `t`, and says so to every
    /// command that opens it (recorded durably, before any batch).
    pub fn set_until(&self, t: Micros) -> Result<(), StoreError> {
        let mut w = self.writer.lock().expect("writer lock");
        if w.totals != Totals::default() {
            return Err(StoreError::query(
                "until",
                "the store has applied events already",
            ));
        }
        self.tree.insert(keys::META_UNTIL, &t.0.to_be_bytes())?;
        self.tree.flush()?;
        w.until = Some(t);
        Ok(())
    }

    /// The time this store's projection is as of (`replay --until`), or
    /// `None` for a store that follows its topic.
    pub fn until(&self) -> Option<Micros> {
        self.writer.lock().expect("writer lock").until
    }

    /// The topic the store holds the projection of, as recorded (none
    /// before its first ingest).
    pub fn topic(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .tree
            .get(keys::META_TOPIC)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Binds the store to the topic it holds the projection of, recorded at
    /// first use (stores from before the record are bound by their
    /// checkpoints). Returns the topic it belongs to when that is another.
    pub fn bind_topic(&self, topic: &str) -> Result<Option<String>, StoreError> {
        if let Some(v) = self.tree.get(keys::META_TOPIC)? {
            let bound = String::from_utf8_lossy(&v).into_owned();
            return Ok((bound != topic).then_some(bound));
        }
        if let Some((other, _)) = self.checkpoints().into_keys().find(|(t, _)| t != topic) {
            return Ok(Some(other));
        }
        self.tree.insert(keys::META_TOPIC, topic.as_bytes())?;
        Ok(None)
    }
}

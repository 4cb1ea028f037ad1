//! Which store this is: the layout it was written with and the topic it
//! holds the projection of. A store of another layout or another topic is
//! refused, never reinterpreted.

use super::{keys, Store, StoreError, LAYOUT, READS_AS_IS, UPGRADES_IN_PLACE};

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

impl Store {
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

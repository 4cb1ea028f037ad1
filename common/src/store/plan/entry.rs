//! Index keys as the planner reads them: `keys` parses, these name the
//! entry a malformed key came from.

use super::*;

/// Reads an order entry (its key after the list `prefix`, and its value)
/// by the layout in `keys`.
pub(super) fn order_entry(
    order: OrderField,
    prefix: &[u8],
    k: &[u8],
    v: &[u8],
) -> Result<keys::OrderEntry, StoreError> {
    keys::read_order_entry(order, &k[prefix.len()..], v)
        .ok_or_else(|| StoreError::corrupt(k, "bad order entry"))
}

pub(super) fn instant(k: &[u8], b: &[u8]) -> Result<Micros, StoreError> {
    let b: [u8; 8] = b
        .try_into()
        .map_err(|_| StoreError::corrupt(k, "bad instant in index key"))?;
    Ok(Micros::from_key_bytes(b))
}

/// A record's value of a grouped sort field.
pub(super) fn group_value(field: IndexField, s: &RecordState) -> Option<String> {
    match field {
        IndexField::Status => Some(s.status().as_str().to_owned()),
        IndexField::SourceRegion => s.get(Field::SourceRegion).map(str::to_owned),
        IndexField::DestinationRegion => s.get(Field::DestinationRegion).map(str::to_owned),
        IndexField::Route => None,
    }
}

/// The value a count key names after its field's prefix.
pub(super) fn count_value(prefix: &[u8], k: &[u8]) -> Result<Option<String>, StoreError> {
    keys::read_count_value(&k[prefix.len()..])
        .ok_or_else(|| StoreError::corrupt(k, "bad count key"))
}

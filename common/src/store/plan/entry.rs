//! Reading index keys: an order entry's sort value, `created_at`, number
//! and (when it holds one) id; a count key's value.

use super::*;

/// One entry of a sort order, as its key and value give it.
pub(super) struct OrderEntry {
    /// The sort value, as bytes that sort like it.
    pub value: Vec<u8>,
    pub created: [u8; 8],
    pub number: u32,
    /// The record's id, when the entry holds it (`id` and `plan_id`: their
    /// sort values are strings); the `updated_at` order holds integers.
    pub id: Option<String>,
}

/// Reads an order entry: `updated_at number → created_at`, `id →
/// created_at number`, or `plan created_at id → created_at number`
/// (time-ordered within a plan, sorted by value).
pub(super) fn order_entry(
    order: OrderField,
    k: &[u8],
    tail: &[u8],
    v: &[u8],
) -> Result<OrderEntry, StoreError> {
    let bad = || StoreError::corrupt(k, "bad order key");
    match order {
        OrderField::UpdatedAt => {
            let (updated, number) = keys::read_instant_number(tail).ok_or_else(bad)?;
            let created = v
                .try_into()
                .map_err(|_| StoreError::corrupt(k, "bad order value"))?;
            Ok(OrderEntry {
                value: updated.to_vec(),
                created,
                number,
                id: None,
            })
        }
        // The live lists are postings in form, read by `stuck.rs`.
        OrderField::Live => Err(StoreError::corrupt(k, "a live list is not a sort order")),
        OrderField::Id | OrderField::PlanId => {
            let (value_len, id_at) = match order {
                OrderField::Id => (0, 0),
                _ => {
                    let value_len = tail.len() - keys::skip_opt(tail).ok_or_else(bad)?.len();
                    (value_len, value_len + 8)
                }
            };
            let id = parse_id(k, tail.get(id_at..).ok_or_else(bad)?)?;
            let (created, number) = instant_number(k, v)?;
            let value = match order {
                OrderField::Id => id.as_bytes().to_vec(),
                _ => tail[..value_len].to_vec(),
            };
            Ok(OrderEntry {
                value,
                created,
                number,
                id: Some(id),
            })
        }
    }
}

/// What an `id` or `plan_id` order entry carries as its value: its
/// `created_at` and the record's number.
fn instant_number(k: &[u8], v: &[u8]) -> Result<([u8; 8], u32), StoreError> {
    let bad = || StoreError::corrupt(k, "bad order value");
    let (at, n) = v.split_at_checked(8).ok_or_else(bad)?;
    Ok((
        at.try_into().map_err(|_| bad())?,
        keys::read_number(n).ok_or_else(bad)?,
    ))
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

pub(super) fn parse_id(k: &[u8], tail: &[u8]) -> Result<String, StoreError> {
    keys::read_str(tail)
        .filter(|(_, rest)| rest.is_empty())
        .and_then(|(id, _)| String::from_utf8(id).ok())
        .ok_or_else(|| StoreError::corrupt(k, "bad id in index key"))
}

pub(super) fn parse_opt(k: &[u8], tail: &[u8]) -> Result<Option<String>, StoreError> {
    match tail.first() {
        Some(0) if tail.len() == 1 => Ok(None),
        Some(1) => keys::read_str(&tail[1..])
            .filter(|(_, rest)| rest.is_empty())
            .and_then(|(v, _)| String::from_utf8(v).ok())
            .map(Some)
            .ok_or_else(|| StoreError::corrupt(k, "bad count key")),
        _ => Err(StoreError::corrupt(k, "bad count key")),
    }
}

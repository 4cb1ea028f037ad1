//! Record-by-record comparison of two stores (`tracker verify`).

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub digest_a: String,
    pub digest_b: String,
    pub records_a: u64,
    pub records_b: u64,
    /// Up to `max_report` ids per kind of difference.
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub differing: Vec<String>,
    pub differences: u64,
    /// Index inconsistencies found in either store.
    pub inconsistencies: Vec<String>,
}

impl Comparison {
    pub fn equal(&self) -> bool {
        self.differences == 0 && self.digest_a == self.digest_b && self.inconsistencies.is_empty()
    }
}

/// Walks both stores in id order and compares the records as the API shows
/// them; also checks each store's indexes against its records.
pub fn compare(a: &Store, b: &Store, max_report: usize) -> Result<Comparison, StoreError> {
    let (va, vb) = (a.view(), b.view());
    let mut c = Comparison {
        digest_a: va.digest()?,
        digest_b: vb.digest()?,
        records_a: 0,
        records_b: 0,
        only_in_a: vec![],
        only_in_b: vec![],
        differing: vec![],
        differences: 0,
        inconsistencies: vec![],
    };
    let mut ia = va.records().peekable();
    let mut ib = vb.records().peekable();
    let note = |list: &mut Vec<String>, id: &str, n: &mut u64| {
        *n += 1;
        if list.len() < max_report {
            list.push(id.to_owned());
        }
    };
    loop {
        let order = match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some(Err(_)), _) => {
                return Err(ia.next().and_then(Result::err).expect("peeked an error"))
            }
            (_, Some(Err(_))) => {
                return Err(ib.next().and_then(Result::err).expect("peeked an error"))
            }
            (Some(Ok((x, _))), Some(Ok((y, _)))) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let (id, _) = ia.next().expect("peeked")?;
                c.records_a += 1;
                note(&mut c.only_in_a, &id, &mut c.differences);
            }
            std::cmp::Ordering::Greater => {
                let (id, _) = ib.next().expect("peeked")?;
                c.records_b += 1;
                note(&mut c.only_in_b, &id, &mut c.differences);
            }
            std::cmp::Ordering::Equal => {
                let (id, sa) = ia.next().expect("peeked")?;
                let (_, sb) = ib.next().expect("peeked")?;
                c.records_a += 1;
                c.records_b += 1;
                if sa.view(&id) != sb.view(&id) {
                    note(&mut c.differing, &id, &mut c.differences);
                }
            }
        }
    }
    for (name, s) in [("a", a), ("b", b)] {
        if let Err(e) = s.check_consistency()? {
            c.inconsistencies.push(format!("store {name}: {e}"));
        }
    }
    Ok(c)
}

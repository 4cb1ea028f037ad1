//! Which partitions to start consuming, and where. Pure, so the "partitions
//! added later are picked up" rule is unit-tested without a broker (the test
//! broker cannot add partitions).

use std::collections::BTreeSet;

use common::store::Checkpoints;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The stored next offset.
    Offset(i64),
    /// Never consumed: from the start of the log.
    Beginning,
}

/// The partitions in `discovered` that are not yet `assigned`, each with
/// where to start: the checkpoint stored for it, or the beginning.
pub fn new_assignments(
    topic: &str,
    assigned: &BTreeSet<i32>,
    discovered: &[i32],
    checkpoints: &Checkpoints,
) -> Vec<(i32, Start)> {
    let mut fresh: Vec<i32> = discovered
        .iter()
        .copied()
        .filter(|p| !assigned.contains(p))
        .collect();
    fresh.sort_unstable();
    fresh.dedup();
    fresh
        .into_iter()
        .map(|p| match checkpoints.get(&(topic.to_owned(), p)) {
            Some(&next) => (p, Start::Offset(next)),
            None => (p, Start::Beginning),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_assignment_uses_checkpoints_or_the_beginning() {
        let mut cps = Checkpoints::new();
        cps.insert(("t".into(), 1), 42);
        cps.insert(("other".into(), 0), 7);
        let got = new_assignments("t", &BTreeSet::new(), &[2, 0, 1], &cps);
        assert_eq!(
            got,
            vec![
                (0, Start::Beginning),
                (1, Start::Offset(42)),
                (2, Start::Beginning)
            ]
        );
    }

    #[test]
    fn partitions_added_later_are_picked_up_once() {
        let assigned: BTreeSet<i32> = [0, 1, 2].into();
        let mut cps = Checkpoints::new();
        cps.insert(("t".into(), 0), 10);
        assert_eq!(new_assignments("t", &assigned, &[0, 1, 2], &cps), vec![]);
        assert_eq!(
            new_assignments("t", &assigned, &[0, 1, 2, 3, 4, 4], &cps),
            vec![(3, Start::Beginning), (4, Start::Beginning)]
        );
    }
}

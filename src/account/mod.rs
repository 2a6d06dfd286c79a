//! Pure functions from a [`Snapshot`] and a charging policy to owners, charges and the
//! reconciliation with the kernel's `Shmem`. No I/O.

pub mod cgroup;
pub mod charge;
pub mod exact;
pub mod labels;
pub mod owner;
pub mod pods;
pub mod reconcile;
pub mod show;

use crate::model::{Pid, Snapshot};
use std::collections::HashMap;

pub use charge::Policy;
pub use reconcile::{HugetlbRec, Reconciliation};

/// A snapshot with owners and charges worked out under one policy.
#[derive(Debug)]
pub struct Accounted<'a> {
    /// The snapshot accounted.
    pub snapshot: &'a Snapshot,
    /// The policy charges follow.
    pub policy: Policy,
    /// Owner of each object, by index in `snapshot.objects`.
    pub owners: Vec<Option<Pid>>,
    /// What each process is charged for each object, by object index.
    pub charges: Vec<Vec<(Pid, u64)>>,
    /// Shared bytes charged to each process, summed over objects.
    pub per_process: HashMap<Pid, u64>,
    /// Resident bytes of objects nobody is charged for: no holder and no living SysV creator.
    pub unheld_bytes: u64,
    /// How the objects' figures explain the kernel's `Shmem`.
    pub reconciliation: Reconciliation,
    /// Each object's label from the active rules ([`labels::active`]), by object index.
    pub labels: Vec<Option<String>>,
}

/// Owners and charges of every object of `snapshot` under `policy`.
pub fn account(snapshot: &Snapshot, policy: Policy) -> Accounted<'_> {
    let owners: Vec<Option<Pid>> = snapshot
        .objects
        .iter()
        .map(|o| owner::owner(snapshot, o))
        .collect();
    let charges: Vec<Vec<(Pid, u64)>> = snapshot
        .objects
        .iter()
        .zip(&owners)
        .map(|(o, &own)| charge::charge(o, own, policy))
        .collect();
    let mut per_process: HashMap<Pid, u64> = HashMap::new();
    let mut unheld_bytes = 0;
    for (o, ch) in snapshot.objects.iter().zip(&charges) {
        if ch.is_empty() {
            unheld_bytes = o.resident_bytes.saturating_add(unheld_bytes);
        }
        for &(pid, bytes) in ch {
            let e = per_process.entry(pid).or_default();
            *e = e.saturating_add(bytes);
        }
    }
    let labels = labels::labels(snapshot, &owners, labels::active());
    Accounted {
        snapshot,
        policy,
        reconciliation: reconcile::reconcile(snapshot),
        labels,
        owners,
        charges,
        per_process,
        unheld_bytes,
    }
}

impl Accounted<'_> {
    /// Shared bytes charged to `pid` (0 when nothing is).
    pub fn charged(&self, pid: Pid) -> u64 {
        self.per_process.get(&pid).copied().unwrap_or(0)
    }

    /// Objects owned by a process.
    pub fn owned_by(&self, pid: Pid) -> impl Iterator<Item = usize> + '_ {
        self.owners
            .iter()
            .enumerate()
            .filter(move |(_, o)| **o == Some(pid))
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Accuracy, Holder, Object, ObjectDetail, ObjectId, Process, Via};

    pub fn process(pid: Pid, start_ticks: u64) -> Process {
        Process {
            pid,
            ppid: 1,
            comm: format!("p{pid}"),
            start_ticks,
            ..Process::default()
        }
    }

    pub fn object(ino: u64, resident: u64, holders: &[Pid]) -> Object {
        let id = ObjectId::Inode { dev: 1, ino };
        Object {
            id,
            detail: ObjectDetail::AnonShared,
            dev: Some(1),
            inode: ino,
            size_bytes: resident * 2,
            page_size_bytes: 4096,
            hugetlb: false,
            resident_bytes: resident,
            swap_bytes: 0,
            accuracy: Accuracy::Exact,
            holders: holders
                .iter()
                .map(|&pid| Holder {
                    pid,
                    via: Via::Map {
                        start: 0x1000,
                        end: 0x1000 + resident * 2,
                        offset: 0,
                        shared: true,
                        pss_bytes: None,
                        rss_bytes: None,
                    },
                })
                .collect(),
            foreign_ns: None,
        }
    }

    pub fn snapshot(mut processes: Vec<Process>, objects: Vec<Object>) -> Snapshot {
        processes.sort_by_key(|p| p.pid);
        Snapshot {
            page_size: 4096,
            clock_ticks: 100,
            processes,
            objects,
            ..Snapshot::default()
        }
    }

    /// Under every policy the charges plus the unheld bytes add up to the objects' resident sum.
    #[test]
    fn conservation_under_every_policy() {
        let snap = snapshot(
            vec![process(10, 1), process(11, 2), process(12, 3)],
            vec![
                object(1, 1000, &[10, 11, 12]),
                object(2, 7, &[11, 12]),
                object(3, 4096, &[]),
                object(4, 1, &[12, 10, 11]),
            ],
        );
        for policy in Policy::ALL {
            let acc = account(&snap, policy);
            let charged: u64 = acc.per_process.values().sum();
            assert_eq!(
                charged + acc.unheld_bytes,
                1000 + 7 + 4096 + 1,
                "{policy:?}"
            );
            assert_eq!(acc.unheld_bytes, 4096);
        }
        let acc = account(&snap, Policy::Owner);
        assert_eq!(acc.charged(10), 1001);
        assert_eq!(acc.charged(11), 7);
        assert_eq!(acc.owned_by(10).count(), 2);
    }
}

//! How much of the kernel's `Shmem` the listed objects explain.

use crate::model::Snapshot;
use crate::size::{signed_delta, sum_bytes};
use std::path::PathBuf;

/// A tmpfs mount's bytes that no listed object explains: files nobody holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountRest {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its mount namespace when not shmwho's own.
    pub namespace: Option<u64>,
    /// The container of that namespace, from a cgroup.
    pub container: Option<String>,
    /// Hidden under another mount (measured in a private copy of its namespace).
    pub hidden: bool,
    /// statfs usage of the mount (resident + swapped), None when it has no size limit or is
    /// hidden under another mount.
    pub used_bytes: Option<u64>,
    /// Listed objects on this mount (resident + swapped).
    pub listed_bytes: u64,
    /// Files on the mount held by no process and not listed: `used - listed`.
    pub unheld_files_bytes: Option<u64>,
}

/// The objects' resident bytes set against the kernel's `Shmem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    /// `Shmem` from /proc/meminfo.
    pub shmem_bytes: u64,
    /// Resident bytes of the listed objects.
    pub objects_bytes: u64,
    /// Per tmpfs mount, its files nobody holds.
    pub mounts: Vec<MountRest>,
    /// objects + unheld tmpfs files.
    pub explained_bytes: u64,
    /// Shmem − explained. Negative when explained exceeds Shmem (per-CPU counter drift, or
    /// swapped pages of unheld tmpfs files counted by statfs).
    pub unexplained_bytes: i64,
    /// The hugetlb pools set against the hugetlb objects, which `Shmem` does not count.
    pub hugetlb: HugetlbRec,
    /// What the unexplained part may come from.
    pub causes: Causes,
}

/// The huge pages in use set against the hugetlb objects listed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HugetlbRec {
    /// Σ over the pools of (nr_hugepages − free_hugepages) × page size.
    pub used_bytes: u64,
    /// Σ over the pools of resv_hugepages × page size: promised to mappings, not faulted in.
    pub reserved_bytes: u64,
    /// Resident bytes of the hugetlb objects listed.
    pub explained_bytes: u64,
    /// used − explained: huge pages of private MAP_HUGETLB mappings, of processes that could
    /// not be read, or of objects nobody holds on unlisted mounts.
    pub unexplained_bytes: i64,
}

/// Sets the hugetlb objects of `snap` against its huge page pools.
pub fn reconcile_hugetlb(snap: &Snapshot) -> HugetlbRec {
    let used_bytes = sum_bytes(snap.huge_pools.iter().map(|p| p.used_bytes()));
    let reserved_bytes = sum_bytes(
        snap.huge_pools
            .iter()
            .map(|p| p.reserved_pages.saturating_mul(p.page_size_bytes)),
    );
    let explained_bytes = sum_bytes(
        snap.objects
            .iter()
            .filter(|o| o.hugetlb())
            .map(|o| o.resident_bytes),
    );
    HugetlbRec {
        used_bytes,
        reserved_bytes,
        explained_bytes,
        unexplained_bytes: signed_delta(explained_bytes, used_bytes),
    }
}

/// What may leave part of `Shmem` unexplained, from what the scan could not do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Causes {
    /// How far the kernel's per-CPU counters may keep `Shmem` off, either way.
    pub drift_bytes: u64,
    /// Processes whose maps or fds could not be read: objects only they hold are missing.
    pub unreadable_processes: u32,
    /// IPC namespaces not entered: their unattached segments are missing.
    pub ipc_namespaces_not_entered: u32,
    /// tmpfs mounts not measured (hidden and not revealed, or unreachable).
    pub mounts_not_measured: u32,
}

impl Causes {
    /// Whether `unexplained` is within the counters' drift.
    pub fn within_drift(&self, unexplained: i64) -> bool {
        unexplained.unsigned_abs() <= self.drift_bytes
    }
}

/// Sets the objects of `snap` against `Shmem` (hugetlb segments left out: not Shmem).
pub fn reconcile(snap: &Snapshot) -> Reconciliation {
    // hugetlb pool pages are not Shmem: listed, but not part of the reconciliation.
    let objects_bytes = sum_bytes(
        snap.objects
            .iter()
            .filter(|o| !o.hugetlb())
            .map(|o| o.resident_bytes),
    );
    let mounts: Vec<MountRest> = snap
        .mounts
        .iter()
        .map(|m| {
            let listed_bytes = sum_bytes(
                snap.objects
                    .iter()
                    .filter(|o| o.dev == Some(m.dev))
                    .map(|o| o.resident_bytes.saturating_add(o.swap_bytes)),
            );
            MountRest {
                mount_point: m.mount_point.clone(),
                namespace: m.foreign_ns,
                container: m.container.clone(),
                hidden: m.hidden,
                used_bytes: m.used_bytes,
                listed_bytes,
                unheld_files_bytes: m.used_bytes.map(|u| u.saturating_sub(listed_bytes)),
            }
        })
        .collect();
    let explained_bytes = objects_bytes.saturating_add(sum_bytes(
        mounts.iter().filter_map(|m| m.unheld_files_bytes),
    ));
    Reconciliation {
        shmem_bytes: snap.meminfo.shmem_bytes,
        objects_bytes,
        mounts,
        explained_bytes,
        unexplained_bytes: signed_delta(explained_bytes, snap.meminfo.shmem_bytes),
        hugetlb: reconcile_hugetlb(snap),
        causes: Causes {
            drift_bytes: snap.notes.shmem_drift_bytes,
            unreadable_processes: snap.notes.unreadable,
            ipc_namespaces_not_entered: snap.notes.foreign_ipc_ns,
            mounts_not_measured: snap.notes.unmeasured_mounts,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::{object, snapshot};
    use crate::model::{HugePool, Meminfo, TmpfsMount};

    #[test]
    fn unheld_tmpfs_files_count_once() {
        let mut on_run = object(2, 300, &[]);
        on_run.dev = Some(9);
        let mut snap = snapshot(vec![], vec![object(1, 1000, &[]), on_run]);
        snap.meminfo = Meminfo {
            shmem_bytes: 2000,
            ..Meminfo::default()
        };
        snap.mounts = vec![
            TmpfsMount {
                mount_point: "/run".into(),
                dev: 9,
                foreign_ns: None,
                used_bytes: Some(800),
                size_bytes: None,
                hidden: false,
                container: None,
            },
            TmpfsMount {
                mount_point: "/hidden".into(),
                dev: 10,
                foreign_ns: None,
                used_bytes: None,
                size_bytes: None,
                hidden: true,
                container: None,
            },
        ];
        let r = reconcile(&snap);
        assert_eq!(r.objects_bytes, 1300);
        assert_eq!(r.mounts[0].unheld_files_bytes, Some(500));
        assert_eq!(r.explained_bytes, 1800);
        assert_eq!(r.unexplained_bytes, 200);
        assert_eq!(r.hugetlb, HugetlbRec::default());
    }

    #[test]
    fn hugetlb_objects_are_set_against_the_pools() {
        let mut huge = object(3, 4 << 20, &[]);
        huge.hugetlb = true;
        let mut snap = snapshot(vec![], vec![object(1, 1000, &[]), huge]);
        snap.meminfo.shmem_bytes = 1000;
        snap.huge_pools = vec![
            HugePool {
                page_size_bytes: 2 << 20,
                total_pages: 10,
                free_pages: 7,
                reserved_pages: 1,
            },
            HugePool {
                page_size_bytes: 1 << 30,
                total_pages: 1,
                free_pages: 1,
                reserved_pages: 0,
            },
        ];
        let r = reconcile(&snap);
        // The hugetlb object stays out of Shmem's reconciliation.
        assert_eq!(r.objects_bytes, 1000);
        assert_eq!(r.unexplained_bytes, 0);
        assert_eq!(
            r.hugetlb,
            HugetlbRec {
                used_bytes: 6 << 20,
                reserved_bytes: 2 << 20,
                explained_bytes: 4 << 20,
                unexplained_bytes: 2 << 20,
            }
        );
    }
}

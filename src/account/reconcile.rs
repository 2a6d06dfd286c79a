//! How much of the kernel's `Shmem` the listed objects explain.

use crate::model::Snapshot;
use crate::size::{signed_delta, sum_bytes};
use std::path::PathBuf;

/// A tmpfs mount's bytes that no listed object explains: files nobody holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountRest {
    /// Where it is mounted.
    pub mount_point: PathBuf,
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
    /// Shmem − explained. Negative when explained exceeds Shmem (per-CPU counter drift of
    /// ~100 kB per CPU, or swapped pages of unheld tmpfs files counted by statfs).
    pub unexplained_bytes: i64,
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
        .filter(|m| m.foreign_ns.is_none())
        .map(|m| {
            let listed_bytes = sum_bytes(
                snap.objects
                    .iter()
                    .filter(|o| o.dev == Some(m.dev))
                    .map(|o| o.resident_bytes.saturating_add(o.swap_bytes)),
            );
            MountRest {
                mount_point: m.mount_point.clone(),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::{object, snapshot};
    use crate::model::{Meminfo, TmpfsMount};

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
            },
            TmpfsMount {
                mount_point: "/hidden".into(),
                dev: 10,
                foreign_ns: None,
                used_bytes: None,
            },
        ];
        let r = reconcile(&snap);
        assert_eq!(r.objects_bytes, 1300);
        assert_eq!(r.mounts[0].unheld_files_bytes, Some(500));
        assert_eq!(r.explained_bytes, 1800);
        assert_eq!(r.unexplained_bytes, 200);
    }
}

//! Per memory cgroup: the shared memory shmwho charges to its processes, under every policy,
//! next to what the kernel itself charges to the cgroup (`memory.stat` `shmem`).
//!
//! The two need not agree: the kernel charges a shmem page to the memory cgroup of the process
//! that first touched it and never moves the charge (not when that process exits or moves, not
//! when the cgroup empties), while shmwho charges by owner, by holders or by PSS.

use super::{account, Accounted, Policy};
use crate::model::{CgroupVersion, Snapshot};
use std::collections::BTreeMap;

/// What the procs view explains once, below the per-cgroup table.
pub const NOTE: &str = "The kernel charges a shmem page to the memory cgroup of the process that first touched it and never moves the charge (not when that process exits or moves, not when the cgroup empties); shmwho charges an object to its owner (the SysV creator, else the holder that started first), its holders or its mappers. Where KERNEL differs from OWNER, pages were first touched from another cgroup (a worker in another unit, a process since moved or exited), or the cgroup's processes wrote files nobody holds now (tmpfs, /dev/shm). KERNEL counts resident pages only; with cgroup v2 it includes child cgroups.";

/// One memory cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupRow {
    /// Path as `/proc/PID/cgroup` prints it; None for processes whose cgroup was unreadable.
    pub path: Option<String>,
    /// Memory controller version of the cgroup, when known.
    pub version: Option<CgroupVersion>,
    /// Listed processes in it.
    pub processes: u32,
    /// Shared bytes charged to its processes under the accounted policy.
    pub charged_bytes: u64,
    /// Charged under the owner policy.
    pub owner_bytes: u64,
    /// Charged under the split policy.
    pub split_bytes: u64,
    /// Under `touched`, which needs smaps: None when it was not read.
    pub touched_bytes: Option<u64>,
    /// `memory.stat` `shmem`; None when unreadable.
    pub kernel_shmem_bytes: Option<u64>,
}

impl CgroupRow {
    /// Kernel minus shmwho's owner charge: positive when the kernel charges the cgroup more.
    pub fn kernel_minus_owner(&self) -> Option<i64> {
        self.kernel_shmem_bytes
            .map(|k| crate::size::signed_delta(self.owner_bytes, k))
    }
}

/// Every cgroup that holds a listed process, largest kernel shmem first (then charged bytes).
pub fn by_cgroup(acc: &Accounted) -> Vec<CgroupRow> {
    let snap: &Snapshot = acc.snapshot;
    let other = |p: Policy| (p != acc.policy).then(|| account(snap, p));
    let owner = other(Policy::Owner);
    let split = other(Policy::Split);
    let touched = if snap.with_smaps {
        other(Policy::Touched)
    } else {
        None
    };
    let pick = |p: Policy, computed: &Option<Accounted>, pid| match computed {
        Some(a) => a.charged(pid),
        None if acc.policy == p => acc.charged(pid),
        None => 0,
    };
    let mut rows: BTreeMap<Option<&str>, CgroupRow> = BTreeMap::new();
    for p in &snap.processes {
        let key = p.cgroup.as_deref();
        let row = rows.entry(key).or_insert_with(|| {
            let mem = key.and_then(|k| {
                snap.cgroups
                    .binary_search_by(|c| c.path.as_str().cmp(k))
                    .ok()
                    .map(|i| &snap.cgroups[i])
            });
            CgroupRow {
                path: key.map(str::to_string),
                version: mem.map(|m| m.version),
                processes: 0,
                charged_bytes: 0,
                owner_bytes: 0,
                split_bytes: 0,
                touched_bytes: snap.with_smaps.then_some(0),
                kernel_shmem_bytes: mem.and_then(|m| m.shmem_bytes),
            }
        });
        row.processes += 1;
        row.charged_bytes = row.charged_bytes.saturating_add(acc.charged(p.pid));
        row.owner_bytes = row
            .owner_bytes
            .saturating_add(pick(Policy::Owner, &owner, p.pid));
        row.split_bytes = row
            .split_bytes
            .saturating_add(pick(Policy::Split, &split, p.pid));
        if let Some(t) = row.touched_bytes.as_mut() {
            *t = t.saturating_add(pick(Policy::Touched, &touched, p.pid));
        }
    }
    let mut rows: Vec<CgroupRow> = rows.into_values().collect();
    rows.sort_by(|a, b| {
        b.kernel_shmem_bytes
            .unwrap_or(0)
            .cmp(&a.kernel_shmem_bytes.unwrap_or(0))
            .then(b.charged_bytes.cmp(&a.charged_bytes))
            .then(a.path.cmp(&b.path))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::{object, process, snapshot};
    use crate::model::CgroupMem;

    #[test]
    fn charges_per_cgroup_under_every_policy() {
        let mut p10 = process(10, 1);
        p10.cgroup = Some("/system.slice/php-fpm.service".into());
        let mut p11 = process(11, 2);
        p11.cgroup = Some("/system.slice/php-fpm.service".into());
        let mut p12 = process(12, 3);
        p12.cgroup = Some("/user.slice".into());
        let p13 = process(13, 4); // cgroup unreadable
        let mut snap = snapshot(
            vec![p10, p11, p12, p13],
            vec![object(1, 1000, &[10, 11, 12]), object(2, 30, &[13])],
        );
        snap.cgroups = vec![
            CgroupMem {
                path: "/system.slice/php-fpm.service".into(),
                version: CgroupVersion::V1,
                shmem_bytes: Some(400),
            },
            CgroupMem {
                path: "/user.slice".into(),
                version: CgroupVersion::V1,
                shmem_bytes: Some(600),
            },
        ];
        let acc = account(&snap, Policy::Split);
        let rows = by_cgroup(&acc);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].path.as_deref(), Some("/user.slice"));
        assert_eq!(rows[0].kernel_shmem_bytes, Some(600));
        assert_eq!(
            rows[0].owner_bytes, 0,
            "p10 started first and owns object 1"
        );
        assert_eq!(rows[0].split_bytes, 333);
        assert_eq!(rows[0].charged_bytes, 333);
        assert_eq!(rows[0].kernel_minus_owner(), Some(600));
        let php = &rows[1];
        assert_eq!(php.processes, 2);
        assert_eq!(php.owner_bytes, 1000);
        assert_eq!(php.split_bytes, 667, "remainder byte to the first holder");
        assert_eq!(php.touched_bytes, None, "smaps not read");
        assert_eq!(rows[2].path, None);
        assert_eq!(rows[2].kernel_shmem_bytes, None);
        assert_eq!(rows[2].owner_bytes, 30);
        // Whatever the policy, the rows add up to every charge.
        for policy in Policy::ALL {
            let acc = account(&snap, policy);
            let total: u64 = by_cgroup(&acc).iter().map(|r| r.charged_bytes).sum();
            assert_eq!(total, 1030, "{policy:?}");
        }
    }
}

//! Exact memory of groups of processes (`shmwho procs --by ... --exact`): distinct physical
//! pages instead of summed PSS, and what killing the whole group would give back.
//!
//! Pure functions over the physical page sets `collect::pagemap::phys_pages` reads. Pages of
//! shared-memory objects are not in those sets: objects are counted whole, through the charges
//! (`unique`) and through who holds them (`freed-if-gone`), so a page is never counted twice.

use super::Accounted;
use crate::model::{Object, ObjectDetail, PhysPages, Pid, Process};
use std::collections::HashMap;

/// One group's exact figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupMemory {
    /// Page size the page counts are in.
    pub page_size: u64,
    /// Distinct anonymous pages the group's processes map (copy-on-write pages shared after
    /// fork count once).
    pub anon_pages: u64,
    /// Distinct file pages (page cache) the group maps, outside shared-memory objects.
    pub file_pages: u64,
    /// Of `anon_pages`, those no process outside the group maps.
    pub freed_anon_pages: u64,
    /// Of `file_pages`, those no process outside the group maps (they stay in the page cache
    /// after the group exits, but become reclaimable).
    pub freed_file_pages: u64,
    /// Shared memory charged to the group's processes under the policy in use.
    pub objects_charged_bytes: u64,
    /// Resident bytes of objects that only the group holds and that go away with their last
    /// holder.
    pub objects_freed_bytes: u64,
}

impl GroupMemory {
    /// Distinct pages the group maps plus the shared objects charged to it.
    pub fn unique_bytes(&self) -> u64 {
        (self.anon_pages + self.file_pages) * self.page_size + self.objects_charged_bytes
    }

    /// Pages and objects no process outside the group holds: what killing it would return.
    pub fn freed_if_gone_bytes(&self) -> u64 {
        (self.freed_anon_pages + self.freed_file_pages) * self.page_size + self.objects_freed_bytes
    }
}

/// For each group: (distinct pages its processes map, of them those no other process maps).
/// `sets` gives each process's group (None: a process outside every group) and its sorted
/// page frame numbers.
pub fn count_pages(sets: &[(Option<usize>, &[u64])], groups: usize) -> Vec<(u64, u64)> {
    const OUTSIDE: usize = usize::MAX;
    let mut all: Vec<(u64, usize)> = Vec::with_capacity(sets.iter().map(|s| s.1.len()).sum());
    for &(g, pfns) in sets {
        let g = g.unwrap_or(OUTSIDE);
        all.extend(pfns.iter().map(|&pfn| (pfn, g)));
    }
    all.sort_unstable();
    all.dedup();
    let mut out = vec![(0u64, 0u64); groups];
    let mut i = 0;
    while i < all.len() {
        let pfn = all[i].0;
        let mut j = i;
        while j < all.len() && all[j].0 == pfn {
            j += 1;
        }
        // all[i..j]: the distinct groups mapping this page, sorted, OUTSIDE last.
        let alone = j - i == 1;
        for &(_, g) in &all[i..j] {
            if g != OUTSIDE {
                out[g].0 += 1;
                if alone {
                    out[g].1 += 1;
                }
            }
        }
        i = j;
    }
    out
}

/// Whether an object's memory goes away when its last holder does: anonymous shared memory and
/// memfds, files already unlinked, SysV segments marked for removal. A SysV segment not yet
/// removed or a file still linked stays (PostgreSQL's segment after a crash, a /dev/shm file).
pub fn dies_with_holders(o: &Object) -> bool {
    match &o.detail {
        ObjectDetail::AnonShared | ObjectDetail::Memfd { .. } => true,
        ObjectDetail::Sysv { segment, .. } => segment.as_ref().is_some_and(|s| s.removed()),
        ObjectDetail::PosixShm(f) | ObjectDetail::Tmpfs(f) => f.deleted,
    }
}

/// Exact figures for each group of `members`. Processes in `pages` that are in no group count
/// as outside; processes missing from `pages` (vanished, unreadable, shmwho itself) add no
/// pages.
pub fn group_memory(
    acc: &Accounted,
    pages: &HashMap<Pid, PhysPages>,
    members: &[Vec<Pid>],
) -> Vec<GroupMemory> {
    let mut group_of: HashMap<Pid, usize> = HashMap::new();
    for (g, pids) in members.iter().enumerate() {
        for &pid in pids {
            group_of.insert(pid, g);
        }
    }
    let mut pids: Vec<&Pid> = pages.keys().collect();
    pids.sort_unstable();
    let anon: Vec<(Option<usize>, &[u64])> = pids
        .iter()
        .map(|pid| (group_of.get(pid).copied(), pages[pid].anon.as_slice()))
        .collect();
    let file: Vec<(Option<usize>, &[u64])> = pids
        .iter()
        .map(|pid| (group_of.get(pid).copied(), pages[pid].file.as_slice()))
        .collect();
    let anon = count_pages(&anon, members.len());
    let file = count_pages(&file, members.len());
    let mut out: Vec<GroupMemory> = (0..members.len())
        .map(|g| GroupMemory {
            page_size: acc.snapshot.page_size,
            anon_pages: anon[g].0,
            freed_anon_pages: anon[g].1,
            file_pages: file[g].0,
            freed_file_pages: file[g].1,
            objects_charged_bytes: members[g].iter().map(|&p| acc.charged(p)).sum(),
            objects_freed_bytes: 0,
        })
        .collect();
    for o in &acc.snapshot.objects {
        let holders = o.holder_pids();
        let Some(&first) = holders.first() else {
            continue;
        };
        let Some(&g) = group_of.get(&first) else {
            continue;
        };
        if dies_with_holders(o) && holders.iter().all(|p| group_of.get(p) == Some(&g)) {
            out[g].objects_freed_bytes += o.resident_bytes;
        }
    }
    out
}

/// The root of each process's tree: the topmost ancestor reached through parents that run the
/// same command. A process whose parent runs another command (or is not visible) is a root, so
/// a PHP-FPM master and its workers, a postmaster and its backends, a `shmwho lab` master and
/// its children each make one tree, and the shell that started them makes its own.
pub fn tree_roots(processes: &[Process]) -> HashMap<Pid, Pid> {
    let by_pid: HashMap<Pid, &Process> = processes.iter().map(|p| (p.pid, p)).collect();
    let mut roots: HashMap<Pid, Pid> = HashMap::with_capacity(processes.len());
    for p in processes {
        let mut chain = vec![p.pid];
        let mut cur = p;
        let root = loop {
            if let Some(&r) = roots.get(&cur.pid) {
                break r;
            }
            match by_pid.get(&cur.ppid) {
                // A chain longer than the process count is a cycle (pid reuse mid-scan).
                Some(parent)
                    if parent.comm == cur.comm
                        && parent.pid != cur.pid
                        && chain.len() <= processes.len() =>
                {
                    chain.push(parent.pid);
                    cur = parent;
                }
                _ => break cur.pid,
            }
        };
        for pid in chain {
            roots.insert(pid, root);
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::{object, process, snapshot};
    use crate::account::{account, Policy};
    use crate::model::FileDetail;

    #[test]
    fn counts_distinct_pages_and_pages_only_the_group_maps() {
        // Group 0: pids with pages {1,2,3} and {2,3,4}; group 1: {4,5}; outside: {5,6}.
        let a: &[u64] = &[1, 2, 3];
        let b: &[u64] = &[2, 3, 4];
        let c: &[u64] = &[4, 5];
        let d: &[u64] = &[5, 6];
        let r = count_pages(&[(Some(0), a), (Some(0), b), (Some(1), c), (None, d)], 2);
        // Group 0 maps 1,2,3,4 (4 shared with group 1); group 1 maps 4,5 (5 shared outside).
        assert_eq!(r, vec![(4, 3), (2, 0)]);
        assert_eq!(count_pages(&[], 1), vec![(0, 0)]);
        // One process: every page is its own.
        assert_eq!(count_pages(&[(Some(0), a)], 1), vec![(3, 3)]);
    }

    #[test]
    fn group_memory_adds_objects() {
        // Object 1 (anon shared, 1000 B) held by 10 and 11; object 2 (100 B) by 11 and 12.
        let mut snap = snapshot(
            vec![process(10, 1), process(11, 2), process(12, 3)],
            vec![object(1, 1000, &[10, 11]), object(2, 100, &[11, 12])],
        );
        snap.page_size = 10;
        let acc = account(&snap, Policy::Owner);
        let pages: HashMap<Pid, PhysPages> = [
            (
                10,
                PhysPages {
                    anon: vec![1, 2],
                    file: vec![100],
                },
            ),
            (
                11,
                PhysPages {
                    anon: vec![2, 3],
                    file: vec![100],
                },
            ),
            (
                12,
                PhysPages {
                    anon: vec![4],
                    file: vec![100],
                },
            ),
        ]
        .into();
        let g = group_memory(&acc, &pages, &[vec![10, 11]]);
        assert_eq!(g.len(), 1);
        let g = g[0];
        assert_eq!((g.anon_pages, g.freed_anon_pages), (3, 3));
        assert_eq!((g.file_pages, g.freed_file_pages), (1, 0));
        // Owner policy: object 1 to 10 (started first), object 2 to 11.
        assert_eq!(g.objects_charged_bytes, 1100);
        // Object 2 is also held by 12, outside: only object 1 goes away with the group.
        assert_eq!(g.objects_freed_bytes, 1000);
        assert_eq!(g.unique_bytes(), 4 * 10 + 1100);
        assert_eq!(g.freed_if_gone_bytes(), 3 * 10 + 1000);
    }

    #[test]
    fn persistent_objects_survive_their_holders() {
        let mut o = object(1, 100, &[10]);
        assert!(dies_with_holders(&o));
        o.detail = ObjectDetail::PosixShm(FileDetail {
            path: "/dev/shm/x".into(),
            deleted: false,
            mount_point: None,
        });
        assert!(!dies_with_holders(&o));
        o.file_mut().unwrap().deleted = true;
        assert!(dies_with_holders(&o));
    }

    #[test]
    fn trees_follow_parents_with_the_same_command() {
        let p = |pid: Pid, ppid: Pid, comm: &str| Process {
            pid,
            ppid,
            comm: comm.to_string(),
            ..Process::default()
        };
        let procs = vec![
            p(1, 0, "init"),
            p(100, 1, "bash"),
            p(200, 100, "php-fpm"),
            p(201, 200, "php-fpm"),
            p(202, 200, "php-fpm"),
            p(300, 201, "php-fpm"),  // a worker's child: same tree
            p(400, 202, "sendmail"), // another command: its own root
            p(500, 999, "orphan"),   // parent not visible
        ];
        let r = tree_roots(&procs);
        assert_eq!(r[&1], 1);
        assert_eq!(r[&100], 100);
        for pid in [200, 201, 202, 300] {
            assert_eq!(r[&pid], 200, "pid {pid}");
        }
        assert_eq!(r[&400], 400);
        assert_eq!(r[&500], 500);
        // A pid-reuse cycle must not hang.
        let cyc = vec![p(7, 8, "x"), p(8, 7, "x")];
        let r = tree_roots(&cyc);
        assert!(r.contains_key(&7) && r.contains_key(&8));
    }
}

//! Who owns an object: the SysV creator while it lives, otherwise the holder that started first
//! (the PHP-FPM master, the postmaster), otherwise nobody.
//!
//! Start times are clock ticks, so a parent and the child it forks within one tick tie. An
//! ancestor started before its descendants, so among tied holders one whose ancestor is also
//! tied loses; only unrelated processes are told apart by pid (after a pid wrap the child may
//! have the smaller pid).

use crate::model::{Object, Pid, Process, Snapshot};

/// The object's owner: the SysV creator while it lives, else the holder that started first.
pub fn owner(snap: &Snapshot, obj: &Object) -> Option<Pid> {
    if let Some(seg) = obj.sysv() {
        // /proc/sysvipc/shm gives cpid in the reader's pid namespace whichever IPC namespace
        // it was read in (ipc/shm.c), so it names a scanned process in every one (0 when the
        // creator is not visible from ours).
        if let Some(p) = snap.process(seg.cpid).filter(|_| seg.cpid > 0) {
            // A pid reused after the creator died started after the segment was made.
            let started = snap.boot_time + (p.start_ticks / snap.clock_ticks.max(1)) as i64;
            if snap.boot_time == 0 || started <= seg.ctime + 1 {
                return Some(p.pid);
            }
        }
    }
    let holders: Vec<&Process> = obj
        .holder_pids()
        .into_iter()
        .filter_map(|pid| snap.process(pid))
        .collect();
    let first = holders.iter().map(|p| p.start_ticks).min()?;
    let tied: Vec<Pid> = holders
        .iter()
        .filter(|p| p.start_ticks == first)
        .map(|p| p.pid)
        .collect();
    tied.iter()
        .copied()
        .filter(|&pid| !tied.iter().any(|&other| is_ancestor(snap, other, pid)))
        .min()
}

/// Whether `a` is a proper ancestor of `d` by the ppid chain of the snapshot.
fn is_ancestor(snap: &Snapshot, a: Pid, d: Pid) -> bool {
    let mut cur = d;
    // Bounded: a ppid cycle (pid reuse between reads) cannot loop forever.
    for _ in 0..snap.processes.len() {
        let Some(p) = snap.process(cur) else {
            return false;
        };
        if p.ppid == a && a != cur {
            return true;
        }
        if p.ppid <= 0 || p.ppid == cur {
            return false;
        }
        cur = p.ppid;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::{object, process, snapshot};
    use crate::model::{ObjectDetail, SysvKey, SysvSegment};

    #[test]
    fn first_started_holder_owns() {
        let snap = snapshot(
            vec![process(10, 500), process(11, 400), process(12, 600)],
            vec![object(1, 100, &[10, 11, 12])],
        );
        assert_eq!(owner(&snap, &snap.objects[0]), Some(11));
    }

    #[test]
    fn sysv_creator_owns_while_alive_and_not_reused() {
        let mut obj = object(1, 100, &[11]);
        obj.detail = ObjectDetail::sysv(SysvSegment {
            key: SysvKey(1),
            shmid: 1,
            perms: 0o600,
            size_bytes: 100,
            cpid: 10,
            lpid: 11,
            nattch: 1,
            uid: 0,
            cuid: 0,
            ctime: 1_000_100,
            rss_bytes: Some(100),
            swap_bytes: Some(0),
        });
        let mut snap = snapshot(vec![process(10, 500), process(11, 400)], vec![obj]);
        snap.boot_time = 1_000_000;
        snap.clock_ticks = 100;
        assert_eq!(owner(&snap, &snap.objects[0]), Some(10));
        // pid 10 now belongs to a process started after the segment was made.
        snap.processes[0].start_ticks = 100 * 1000;
        assert_eq!(owner(&snap, &snap.objects[0]), Some(11));
    }

    /// A parent forks a child within one clock tick; after a pid wrap the child has the smaller
    /// pid. The parent still owns; unrelated tied processes go by pid.
    #[test]
    fn equal_start_times_go_by_ancestry_then_pid() {
        let mut parent = process(30_000, 500);
        parent.ppid = 1;
        let mut child = process(300, 500);
        child.ppid = 30_000;
        let mut grandchild = process(200, 500);
        grandchild.ppid = 300;
        let unrelated = process(400, 500);
        let later = process(100, 501);
        let snap = snapshot(
            vec![
                parent.clone(),
                child.clone(),
                grandchild.clone(),
                unrelated.clone(),
                later.clone(),
            ],
            vec![
                object(1, 100, &[300, 30_000]),
                object(2, 100, &[200, 300]),
                object(3, 100, &[200, 30_000, 100]),
                object(4, 100, &[400, 300]),
                object(5, 100, &[400, 30_000, 200]),
                object(6, 100, &[100]),
            ],
        );
        let owners: Vec<Option<Pid>> = snap.objects.iter().map(|o| owner(&snap, o)).collect();
        assert_eq!(
            owners,
            vec![
                Some(30_000), // parent before child despite the larger pid
                Some(300),    // child before grandchild
                Some(30_000), // ancestry across two generations; pid 100 started later
                Some(300),    // unrelated tie: smaller pid
                Some(400),    // 400 and 30,000 unrelated: pid; 200 descends from 30,000
                Some(100),
            ]
        );
    }

    #[test]
    fn nobody_holds_nobody_owns() {
        let snap = snapshot(vec![process(10, 1)], vec![object(1, 100, &[])]);
        assert_eq!(owner(&snap, &snap.objects[0]), None);
    }
}

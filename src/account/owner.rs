//! Who owns an object: the SysV creator while it lives, otherwise the holder that started first
//! (the PHP-FPM master, the postmaster), otherwise nobody.

use crate::model::{Object, Pid, Snapshot};

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
    obj.holder_pids()
        .into_iter()
        .filter_map(|pid| snap.process(pid))
        .min_by_key(|p| (p.start_ticks, p.pid))
        .map(|p| p.pid)
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

    #[test]
    fn nobody_holds_nobody_owns() {
        let snap = snapshot(vec![process(10, 1)], vec![object(1, 100, &[])]);
        assert_eq!(owner(&snap, &snap.objects[0]), None);
    }
}

//! Fixed scenarios for the three wrong answers of issue 15, run before the random ones and
//! checked by the same rules.

use crate::gen::{Kind, Op, Scenario};

pub fn scenarios() -> Vec<(&'static str, Scenario)> {
    use Op::*;
    let create = |a, kind, pages| Create {
        a,
        kind,
        pages,
        sealable: false,
    };
    vec![
        (
            // The leader calls pthread_exit while a thread runs on: its fd-held memfd, its SysV
            // segment (it is the creator, alive) and the anonymous object it shares with its
            // child are all read through the live thread; the process is in procs.
            "leader thread exited",
            Scenario {
                actors: 1,
                ns: 0,
                ops: vec![
                    create(0, Kind::Memfd, 4),
                    Write {
                        a: 0,
                        o: 0,
                        first: 0,
                        n: 3,
                    },
                    create(0, Kind::Sysv, 4),
                    Write {
                        a: 0,
                        o: 1,
                        first: 0,
                        n: 2,
                    },
                    create(0, Kind::Anon, 4),
                    Write {
                        a: 0,
                        o: 2,
                        first: 1,
                        n: 3,
                    },
                    Fork { a: 0 },
                    LeaderExit { a: 0 },
                ],
            },
        ),
        (
            // Mapped only by a process without a leader thread: no handle exists (map_files is
            // empty): listed as an estimate with reason leader_exited.
            "leader thread exited, sole mapper",
            Scenario {
                actors: 1,
                ns: 0,
                ops: vec![
                    create(0, Kind::Anon, 4),
                    Write {
                        a: 0,
                        o: 0,
                        first: 0,
                        n: 2,
                    },
                    LeaderExit { a: 0 },
                ],
            },
        ),
        (
            // An fd on map_files of an anonymous shared mapping is a holder; once the mapping
            // is gone the object (3 pages resident) is listed through it, also after the fd
            // was passed to another process and the opener exited.
            "anonymous object held by a map_files fd",
            Scenario {
                actors: 2,
                ns: 0,
                ops: vec![
                    create(0, Kind::Anon, 4),
                    Write {
                        a: 0,
                        o: 0,
                        first: 0,
                        n: 3,
                    },
                    MapFd { a: 0, o: 0 },
                    Unmap { a: 0, o: 0 },
                    create(0, Kind::Anon, 4),
                    Write {
                        a: 0,
                        o: 1,
                        first: 2,
                        n: 2,
                    },
                    MapFd { a: 0, o: 1 },
                    Send { a: 0, to: 1, o: 1 },
                    Exit { a: 0 },
                ],
            },
        ),
        (
            // The same for a SysV attachment: the fd reads /SYSV... and holds the segment.
            "SysV segment held by a map_files fd",
            Scenario {
                actors: 1,
                ns: 0,
                ops: vec![
                    create(0, Kind::Sysv, 4),
                    Write {
                        a: 0,
                        o: 0,
                        first: 0,
                        n: 1,
                    },
                    MapFd { a: 0, o: 0 },
                    Unmap { a: 0, o: 0 },
                ],
            },
        ),
        (
            // Actor 0 in IPC and mount namespaces of its own: its first segment is shmid 0
            // there (beside a segment of actor 1 here), a POSIX shm file on its private
            // /dev/shm passed to actor 1, another left there held by nobody (posix_shm, no
            // owner); its child holds the segment too.
            "actor in namespaces of its own",
            Scenario {
                actors: 2,
                ns: 1,
                ops: vec![
                    create(0, Kind::Sysv, 4),
                    Write {
                        a: 0,
                        o: 0,
                        first: 0,
                        n: 2,
                    },
                    create(1, Kind::Sysv, 3),
                    create(0, Kind::Posix, 5),
                    Write {
                        a: 0,
                        o: 2,
                        first: 1,
                        n: 3,
                    },
                    Send { a: 0, to: 1, o: 2 },
                    create(0, Kind::Posix, 2),
                    Write {
                        a: 0,
                        o: 3,
                        first: 0,
                        n: 2,
                    },
                    Close { a: 0, o: 3 },
                    Fork { a: 0 },
                ],
            },
        ),
    ]
}

/// Fixed scenarios of the hugetlb phase (they need its pool and hugetlbfs mount).
pub fn huge_scenarios() -> Vec<(&'static str, Scenario)> {
    use Op::*;
    let create = |a, kind| Create {
        a,
        kind,
        pages: 2,
        sealable: false,
    };
    let write = |a, o, first| Write { a, o, first, n: 1 };
    vec![
        (
            // An fd on map_files of a MAP_HUGETLB mapping (its link reads `/anon_hugepage
            // (deleted)`) is a holder, and holds the object alone once the mapping is gone; a
            // SHM_HUGETLB segment held the same way; every kind with one of two pages faulted in.
            "hugetlb objects held by map_files fds",
            Scenario {
                actors: 2,
                ns: 0,
                ops: vec![
                    create(0, Kind::AnonHuge),
                    write(0, 0, 1),
                    MapFd { a: 0, o: 0 },
                    Fork { a: 0 },
                    Unmap { a: 0, o: 0 },
                    create(1, Kind::SysvHuge),
                    write(1, 1, 0),
                    MapFd { a: 1, o: 1 },
                    Unmap { a: 1, o: 1 },
                    create(1, Kind::MemfdHuge),
                    Map { a: 1, o: 2 },
                    write(1, 2, 1),
                    Send { a: 1, to: 0, o: 2 },
                ],
            },
        ),
        (
            // The first segment of a fresh IPC namespace is shmid 0, and a SHM_HUGETLB one maps
            // on the internal hugetlbfs device with inode 0: still a segment, with its holders.
            "SHM_HUGETLB segment 0 of another IPC namespace",
            Scenario {
                actors: 1,
                ns: 1,
                ops: vec![create(0, Kind::SysvHuge), write(0, 0, 0), Fork { a: 0 }],
            },
        ),
    ]
}

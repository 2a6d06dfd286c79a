//! A whole scan of a fake host built from the captures: every host path comes from
//! [`shmwho::collect::HostPaths`], so nothing of the real host but the kernel's own shmem device
//! leaks in, and each part of the scan shows in the snapshot.

use super::*;
use shmwho::collect::{collect, HostPaths, Options};
use shmwho::model::{ObjectDetail, ObjectKind, SysvKey};

/// proc/ from the captures (one process, pid 1794, uid 0), a SysV table of one unattached
/// segment, etc/passwd naming uid 0 `fake-root`, and dev/shm/ with a file of 2 written pages
/// in a subdirectory, named by mountinfo as the tmpfs at `/dev/shm`.
fn fake_host() -> tempfile::TempDir {
    use std::os::unix::fs::symlink;
    let dir = tempfile::Builder::new()
        .prefix("shmwho-fakehost-")
        .tempdir()
        .unwrap();
    let host = dir.path();
    let write = |rel: &str, data: &[u8]| {
        let p = host.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    write(
        "etc/passwd",
        b"fake-root:x:0:0::/:/bin/sh\nroot:x:0:0::/:/bin/sh\n",
    );
    write("dev/shm/app/region", &[1u8; 2 * 4096]);
    let shm_dev = rustix::fs::stat(host.join("dev/shm")).unwrap().st_dev;
    let mountinfo = format!(
        "22 1 0:21 / /proc rw - proc proc rw\n999 25 {}:{} / /dev/shm rw,nosuid - tmpfs tmpfs rw\n",
        rustix::fs::major(shm_dev),
        rustix::fs::minor(shm_dev)
    );
    write("proc/meminfo", MEMINFO);
    write("proc/stat", b"cpu  1 2 3\nbtime 1795748280\n");
    write("proc/self/mountinfo", mountinfo.as_bytes());
    write("proc/sysvipc/shm", SYSV);
    for (size, nr, free, resv) in [
        ("2048kB", "7\n", "3\n", "1\n"),
        ("1048576kB", "1\n", "1\n", "0\n"),
    ] {
        write(
            &format!("sys/kernel/mm/hugepages/hugepages-{size}/nr_hugepages"),
            nr.as_bytes(),
        );
        write(
            &format!("sys/kernel/mm/hugepages/hugepages-{size}/free_hugepages"),
            free.as_bytes(),
        );
        write(
            &format!("sys/kernel/mm/hugepages/hugepages-{size}/resv_hugepages"),
            resv.as_bytes(),
        );
    }
    write("proc/1794/stat", STAT);
    write("proc/1794/status", STATUS);
    write("proc/1794/maps", b"");
    write("proc/1794/mountinfo", mountinfo.as_bytes());
    std::fs::create_dir_all(host.join("proc/1794/fd")).unwrap();
    for who in ["self", "1794"] {
        std::fs::create_dir_all(host.join(format!("proc/{who}/ns"))).unwrap();
        symlink("ipc:[4026531839]", host.join(format!("proc/{who}/ns/ipc"))).unwrap();
        symlink("mnt:[4026531841]", host.join(format!("proc/{who}/ns/mnt"))).unwrap();
    }
    dir
}

fn paths(host: &std::path::Path) -> HostPaths {
    HostPaths {
        proc_root: host.join("proc"),
        dev_shm: "/dev/shm".into(),
        passwd: host.join("etc/passwd"),
        mount_root: host.to_path_buf(),
        sys_root: host.join("sys"),
    }
}

#[test]
fn a_whole_scan_reads_only_the_host_paths_given() {
    let dir = fake_host();
    let snap = collect(&Options {
        paths: paths(dir.path()),
        smaps: false,
        cgroups: false,
        bpf: true,
        repeated: false,
        counters: true,
        titles: true,
        pss_totals_only: false,
    })
    .expect("scan of the fake host");

    // passwd: the fake name, not the real host's `root`.
    assert_eq!(snap.processes.len(), 1);
    assert_eq!(snap.processes[0].pid, 1794);
    assert_eq!(snap.processes[0].user, "fake-root");
    assert_eq!(snap.boot_time, 1795748280);
    assert_eq!(snap.meminfo, meminfo::parse(MEMINFO).unwrap());

    // sysvipc: the table's one segment, with its typed key.
    let seg = &sysv::parse(SYSV)[0];
    let sysv: Vec<_> = snap
        .objects
        .iter()
        .filter(|o| o.kind() == ObjectKind::Sysv)
        .collect();
    assert_eq!(sysv.len(), 1);
    assert_eq!(sysv[0].sysv_key(), Some(SysvKey(305441741)));
    assert_eq!(sysv[0].sysv(), Some(seg));
    assert_eq!(sysv[0].size_bytes, seg.size_bytes);
    assert!(sysv[0].is_exact());

    // dev/shm: the file, named as mountinfo names it, measured through the mount root.
    let st = rustix::fs::stat(dir.path().join("dev/shm/app/region")).unwrap();
    let posix: Vec<_> = snap
        .objects
        .iter()
        .filter(|o| o.kind() == ObjectKind::PosixShm)
        .collect();
    assert_eq!(posix.len(), 1, "{posix:?}");
    let o = posix[0];
    match &o.detail {
        ObjectDetail::PosixShm(f) => {
            assert_eq!(f.path, std::path::Path::new("/dev/shm/app/region"));
            assert!(!f.deleted);
            assert_eq!(
                f.mount_point.as_deref(),
                Some(std::path::Path::new("/dev/shm"))
            );
        }
        other => panic!("not a POSIX shm detail: {other:?}"),
    }
    assert_eq!(o.inode, st.st_ino);
    assert_eq!(o.size_bytes, 2 * 4096);
    if snap.meminfo.swap_used_bytes() == 0 {
        assert!(o.is_exact());
        assert_eq!(o.resident_bytes, st.st_blocks as u64 * 512);
    }
    assert!(o.holders.is_empty());

    // The fake /dev/shm's mount is measured through the mount root, like its files.
    let mount = snap
        .mounts
        .iter()
        .find(|m| m.mount_point == std::path::Path::new("/dev/shm"))
        .expect("the fake /dev/shm mount");
    assert_eq!(mount.dev, shm_dev_of(dir.path()));
    assert!(!snap.notes.hidepid);

    // sys: the fake huge page pools, not the host's.
    let pools: Vec<_> = snap
        .huge_pools
        .iter()
        .map(|p| {
            (
                p.page_size_bytes,
                p.total_pages,
                p.free_pages,
                p.reserved_pages,
            )
        })
        .collect();
    assert_eq!(pools, vec![(2 << 20, 7, 3, 1), (1 << 30, 1, 1, 0)]);
    let r = shmwho::account::account(&snap, shmwho::account::Policy::Owner).reconciliation;
    assert_eq!(r.hugetlb.used_bytes, 4 * (2 << 20));
    assert_eq!(r.hugetlb.reserved_bytes, 2 << 20);
}

fn shm_dev_of(host: &std::path::Path) -> u64 {
    rustix::fs::stat(host.join("dev/shm")).unwrap().st_dev
}

/// The same tree through a wrong passwd and no `/dev/shm` mount line: the process keeps its
/// uid as its name and the file is not listed; nothing else changes.
#[test]
fn missing_host_files_degrade_without_error() {
    let dir = fake_host();
    std::fs::remove_file(dir.path().join("etc/passwd")).unwrap();
    std::fs::write(
        dir.path().join("proc/self/mountinfo"),
        b"22 1 0:21 / /proc rw - proc proc rw,hidepid=2\n",
    )
    .unwrap();
    let snap = collect(&Options {
        paths: paths(dir.path()),
        smaps: false,
        cgroups: false,
        bpf: true,
        repeated: false,
        counters: true,
        titles: true,
        pss_totals_only: false,
    })
    .unwrap();
    assert_eq!(snap.processes[0].user, "0");
    assert!(snap.objects.iter().all(|o| o.kind() == ObjectKind::Sysv));
    assert!(snap.notes.hidepid);
}

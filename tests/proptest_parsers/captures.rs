//! The captures themselves, and inputs that once broke a parser.

use super::*;

/// The kernel does not escape bytes that are not UTF-8 in mountinfo: the mount point keeps
/// them (fd targets under it are matched byte for byte).
#[test]
pub(crate) fn mountinfo_non_utf8_mount_point_keeps_its_bytes() {
    let line = b"99 25 0:77 / /mnt/bad\xff\\040x rw - tmpfs tmpfs rw\n";
    let m = mountinfo::tmpfs(line);
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].mount_point.as_os_str().as_encoded_bytes(),
        b"/mnt/bad\xff x"
    );
    assert_eq!(m[0].dev, rustix::fs::makedev(0, 77));
}

/// The captures themselves still parse as they did when they were taken.
#[test]
pub(crate) fn fixtures_parse_as_captured() {
    let entries: Vec<_> = maps::parse(MAPS).collect();
    assert_eq!(
        entries.len(),
        MAPS.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    );
    let zero: Vec<_> = entries
        .iter()
        .filter(|e| e.path == b"/dev/zero (deleted)")
        .collect();
    assert_eq!(zero.len(), 1);
    assert!(zero[0].shared && zero[0].dev_major == 0 && zero[0].dev_minor == 1);

    let vmas = smaps::parse(SMAPS);
    assert_eq!(
        vmas.len(),
        entries.len(),
        "smaps and maps were captured together"
    );
    let z = vmas
        .iter()
        .find(|v| v.entry.path == b"/dev/zero (deleted)")
        .unwrap();
    assert_eq!((z.rss, z.pss, z.private), (4096, 4096, 4096));

    let st = status::parse(STATUS).unwrap();
    assert_eq!(
        (st.name.as_str(), st.ppid, st.uid, st.rss_shmem),
        ("python3", 1791, 0, 4096)
    );
    let st = stat::parse(STAT).unwrap();
    assert_eq!(
        (st.comm.as_str(), st.ppid, st.start_ticks),
        ("python3", 1791, 139945)
    );

    let segs = sysv::parse(SYSV);
    assert_eq!(segs.len(), 1);
    assert_eq!(
        (segs[0].shmid, segs[0].size_bytes, segs[0].nattch),
        (0, 1 << 20, 1)
    );

    let tmpfs = mountinfo::tmpfs(MOUNTINFO);
    assert!(tmpfs
        .iter()
        .any(|m| m.mount_point == std::path::Path::new("/dev/shm")));
    assert!(!mountinfo::proc_hidepid(MOUNTINFO));

    let mi = meminfo::parse(MEMINFO).unwrap();
    assert_eq!(mi.mem_total_bytes, 24684084 * 1024);
    assert_eq!(mi.shmem_bytes, 8872 * 1024);

    let h = cgroup::parse_mounts(CGROUP_MOUNTINFO);
    assert_eq!(h.memory_version(), Some(CgroupVersion::V1));
    assert_eq!(
        h.process_cgroup(CGROUP_HYBRID).as_deref(),
        Some("/system.slice/php8.2-fpm.service")
    );
    assert_eq!(
        cgroup::parse_process(CGROUP_V2, CgroupVersion::V2).as_deref(),
        Some("/system.slice/postgresql@15-main.service")
    );
    assert_eq!(cgroup::parse_stat_shmem(MEMORY_STAT_V1), Some(9084928));
    assert_eq!(cgroup::parse_stat_shmem(MEMORY_STAT_V2), Some(25165824));
}

/// Inputs procfs-core's meminfo parser panicked on (shmwho now parses meminfo itself).
#[test]
pub(crate) fn meminfo_regressions() {
    assert_eq!(meminfo::parse(b"MemTotal\xc3\xa9 5 kB\n"), None);
    assert_eq!(meminfo::parse(b"MemTotal: 18446744073709551615 kB\n"), None);
}

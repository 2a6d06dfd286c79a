//! Every parser over garbage and mutated captures: no panic, no hang.

use super::*;

// Each parser through the watchdog, forcing the lazy iterator and every field.
pub(crate) fn run_maps(t: &[u8]) -> usize {
    let n = maps::parse(t).fold(0usize, |n, e| n + (e.dev() as usize ^ e.path.len()) % 2);
    for line in t.split(|&b| b == b'\n') {
        if let Some(e) = maps::parse_line(line) {
            assert!(e.start <= e.end, "{e:?}");
            let _ = maps::strip_deleted(&e.path);
        }
    }
    n
}
pub(crate) fn run_smaps(t: &[u8]) -> usize {
    smaps::parse(t).len()
}
pub(crate) fn run_status(t: &[u8]) -> bool {
    status::parse(t).is_some_and(|s| s.vm_rss.is_none())
}
pub(crate) fn run_stat(t: &[u8]) -> bool {
    stat::parse(t).is_some()
}
pub(crate) fn run_sysv(t: &[u8]) -> usize {
    sysv::parse(t).iter().filter(|s| s.removed()).count()
}
pub(crate) fn run_mounts(t: &[u8]) -> (usize, bool) {
    (mountinfo::tmpfs(t).len(), mountinfo::proc_hidepid(t))
}
pub(crate) fn run_btime(t: &[u8]) -> Option<i64> {
    shmwho::collect::parse_btime(t)
}
pub(crate) fn run_meminfo(t: &[u8]) -> bool {
    meminfo::parse(t).is_some()
}
pub(crate) fn run_cgroup(t: &[u8]) -> usize {
    let h = cgroup::parse_mounts(t);
    let _ = h.memory_version();
    [CgroupVersion::V1, CgroupVersion::V2]
        .into_iter()
        .filter_map(|v| cgroup::parse_process(t, v))
        .filter_map(|c| h.stat_path(&c))
        .count()
        + cgroup::parse_stat_shmem(t).is_some() as usize
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn maps_never_panics(t in any_input(MAPS)) {
        bounded("maps::parse", &t, run_maps);
    }

    #[test]
    fn smaps_never_panics(t in any_input(SMAPS)) {
        bounded("smaps::parse", &t, run_smaps);
    }

    #[test]
    fn status_never_panics(t in any_input(STATUS)) {
        bounded("status::parse", &t, run_status);
    }

    #[test]
    fn stat_never_panics(t in any_input(STAT)) {
        bounded("stat::parse", &t, run_stat);
    }

    #[test]
    fn sysv_never_panics(t in any_input(SYSV)) {
        bounded("sysv::parse", &t, run_sysv);
    }

    #[test]
    fn mountinfo_never_panics(t in any_input(MOUNTINFO)) {
        bounded("mountinfo::tmpfs/proc_hidepid", &t, run_mounts);
    }

    #[test]
    fn proc_stat_btime_never_panics(t in any_input(b"cpu  1 2 3\nbtime 1795748280\nprocesses 9\n")) {
        bounded("parse_btime", &t, run_btime);
    }

    #[test]
    fn cgroup_files_never_panic(t in prop_oneof![
        any_input(CGROUP_HYBRID),
        mutated(CGROUP_V2),
        mutated(CGROUP_MOUNTINFO),
        mutated(MEMORY_STAT_V1),
        mutated(MEMORY_STAT_V2),
    ]) {
        bounded("cgroup parsers", &t, run_cgroup);
    }

    #[test]
    fn meminfo_never_panics(t in any_input(MEMINFO)) {
        bounded("meminfo::parse", &t, run_meminfo);
    }
}

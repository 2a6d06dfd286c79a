//! `/proc/PID/cgroup` and a cgroup's `memory.stat`.
//!
//! Hand-written: two lines' worth of format, and the path is kept raw (it may hold `:`).

use crate::model::CgroupVersion;

/// The memory cgroup in a `/proc/PID/cgroup` text: the v1 line whose controllers include
/// `memory` for [`CgroupVersion::V1`], the `0::` line for v2. Lines are
/// `ID:CONTROLLERS:PATH`; the path may itself contain `:`.
pub fn parse_process(text: &[u8], version: CgroupVersion) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    text.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let wanted = match version {
            CgroupVersion::V2 => id == "0" && controllers.is_empty(),
            CgroupVersion::V1 => id != "0" && controllers.split(',').any(|c| c == "memory"),
        };
        (wanted && path.starts_with('/')).then(|| path.to_string())
    })
}

/// `shmem` (bytes) from a `memory.stat` text; the same key in v1 and v2.
pub fn parse_stat_shmem(text: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(text)
        .lines()
        .find_map(|l| l.strip_prefix("shmem "))
        .and_then(|v| v.trim().parse().ok())
}

/// The shmem of a cgroup and all its descendants: v1's `total_shmem`, v2's `shmem` (v2's
/// figures always include the children).
pub fn parse_stat_subtree_shmem(text: &[u8], version: CgroupVersion) -> Option<u64> {
    match version {
        CgroupVersion::V2 => parse_stat_shmem(text),
        CgroupVersion::V1 => String::from_utf8_lossy(text)
            .lines()
            .find_map(|l| l.strip_prefix("total_shmem "))
            .and_then(|v| v.trim().parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .expect("fixture")
    }

    #[test]
    fn process_lines() {
        assert_eq!(
            parse_process(&fixture("cgroup_v2.txt"), CgroupVersion::V2).as_deref(),
            Some("/system.slice/postgresql@15-main.service")
        );
        assert_eq!(
            parse_process(&fixture("cgroup_hybrid.txt"), CgroupVersion::V1).as_deref(),
            Some("/system.slice/php8.2-fpm.service")
        );
        assert_eq!(
            parse_process(b"4:cpu,memory:/a:b:c\n", CgroupVersion::V1).as_deref(),
            Some("/a:b:c")
        );
        assert_eq!(parse_process(b"0::relative\n", CgroupVersion::V2), None);
    }

    #[test]
    fn memory_stat_shmem() {
        assert_eq!(
            parse_stat_shmem(&fixture("memory_stat_v1.txt")),
            Some(9084928),
            "v1: `shmem` is this cgroup's own, `total_shmem` the subtree's"
        );
        assert_eq!(
            parse_stat_shmem(&fixture("memory_stat_v2.txt")),
            Some(25165824)
        );
        assert_eq!(parse_stat_shmem(b"shmem_thp 4096\n"), None);
        let v1 = fixture("memory_stat_v1.txt");
        let total = String::from_utf8_lossy(&v1).lines().find_map(|l| {
            l.strip_prefix("total_shmem ")
                .map(|v| v.parse::<u64>().unwrap())
        });
        assert_eq!(parse_stat_subtree_shmem(&v1, CgroupVersion::V1), total);
        assert_eq!(
            parse_stat_subtree_shmem(&fixture("memory_stat_v2.txt"), CgroupVersion::V2),
            Some(25165824)
        );
        assert_eq!(parse_stat_shmem(b"shmem x\n"), None);
    }
}

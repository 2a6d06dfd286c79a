//! `/proc/sysvipc/shm`: every SysV segment of the reader's IPC namespace, with exact resident
//! and swapped bytes, readable by anyone.
//!
//! Hand-written: procfs-core types uid/gid as u16, so one segment owned by a container uid
//! (100000) fails its whole read.

use super::maps::dec;
use crate::model::{SysvKey, SysvSegment};

/// Parses the table by its header, so a kernel that lacks the `rss`/`swap` columns (before 4.1)
/// still parses. Malformed rows are skipped.
pub fn parse(text: &[u8]) -> Vec<SysvSegment> {
    let text = String::from_utf8_lossy(text);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split_whitespace().collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (
        Some(key),
        Some(shmid),
        Some(perms),
        Some(size),
        Some(cpid),
        Some(lpid),
        Some(nattch),
        Some(uid),
        Some(cuid),
        Some(ctime),
    ) = (
        col("key"),
        col("shmid"),
        col("perms"),
        col("size"),
        col("cpid"),
        col("lpid"),
        col("nattch"),
        col("uid"),
        col("cuid"),
        col("ctime"),
    )
    else {
        return Vec::new();
    };
    let (rss, swap) = (col("rss"), col("swap"));
    lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != cols.len() {
                return None;
            }
            Some(SysvSegment {
                key: SysvKey(f[key].parse().ok()?),
                shmid: f[shmid].parse().ok()?,
                perms: u32::from_str_radix(f[perms], 8).ok()?,
                size_bytes: dec(f[size].as_bytes())?,
                cpid: f[cpid].parse().ok()?,
                lpid: f[lpid].parse().ok()?,
                nattch: dec(f[nattch].as_bytes())?,
                uid: f[uid].parse().ok()?,
                cuid: f[cuid].parse().ok()?,
                ctime: f[ctime].parse().ok()?,
                rss_bytes: match rss {
                    Some(i) => Some(dec(f[i].as_bytes())?),
                    None => None,
                },
                swap_bytes: match swap {
                    Some(i) => Some(dec(f[i].as_bytes())?),
                    None => None,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n";

    #[test]
    fn captured_fixture() {
        let segs = parse(include_bytes!("../../../tests/fixtures/sysvipc_shm.txt"));
        assert_eq!(segs.len(), 1);
        let s = &segs[0];
        assert_eq!(s.key, SysvKey(0x1234abcd));
        assert_eq!(s.size_bytes, 1 << 20);
        assert_eq!(s.perms, 0o600);
        assert_eq!(s.nattch, 1);
        assert_eq!(s.rss_bytes, Some(0));
        assert!(!s.removed());
    }

    #[test]
    fn container_uid_removed_segment_and_negative_key() {
        let text = format!(
            "{HEADER}        -1      32769  1600               2097152  4242  4243      0 100000 100000 100000 100000 0 0 1795749680 1048576 4096\n"
        );
        let segs = parse(text.as_bytes());
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].key, SysvKey(-1));
        assert_eq!(segs[0].uid, 100000);
        assert!(segs[0].removed());
        assert_eq!(segs[0].rss_bytes, Some(1048576));
        assert_eq!(segs[0].swap_bytes, Some(4096));
    }

    #[test]
    fn old_kernel_without_rss_columns() {
        let text = "key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime\n 5 7 600 4096 1 1 0 0 0 0 0 0 0 0\n";
        let segs = parse(text.as_bytes());
        assert_eq!(segs[0].rss_bytes, None);
    }

    #[test]
    fn truncated_rows_and_empty_input() {
        let text = format!("{HEADER} 5 7 600 4096 1 1");
        assert!(parse(text.as_bytes()).is_empty());
        assert!(parse(b"").is_empty());
        assert!(parse(b"garbage\n1 2 3\n").is_empty());
    }
}

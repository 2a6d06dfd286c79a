//! cgroup paths and memory.stat, printed and parsed back.

use super::*;

/// A cgroup path as `/proc/PID/cgroup` prints it: `/` or `/`-separated names, printed raw.
/// A name holds anything but `/`, NUL and newline; not a trailing `\r` either, which
/// `cgroup::parse_process` drops (it splits with `str::lines`), and no empty component
/// (`//`), which the kernel cannot print and which `stat_path` would resolve outside the
/// mount (`Path::join` of an absolute path).
pub(crate) fn cgroup_path() -> impl Strategy<Value = String> {
    let name = prop::collection::vec(
        prop_oneof![
            4 => any::<char>().prop_filter("a name", |c| !matches!(c, '\n' | '\0' | '/')),
            1 => prop::sample::select(vec![':', ' ', '.']),
        ],
        1..12,
    )
    .prop_map(|cs| cs.into_iter().collect::<String>())
    .prop_filter("no trailing CR", |n| !n.ends_with('\r'));
    prop::collection::vec(name, 0..4).prop_map(|names| format!("/{}", names.join("/")))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn meminfo_kernel_format_round_trips(
        kb in prop::array::uniform5(0u64..(u64::MAX >> 10)),
        junk in prop::collection::vec((any::<Index>(), garbage_line()), 0..6),
    ) {
        const KEYS: [&str; 5] = ["MemTotal", "Shmem", "SwapTotal", "SwapFree", "Hugepagesize"];
        let mut lines: Vec<Vec<u8>> = std::str::from_utf8(MEMINFO)
            .unwrap()
            .lines()
            .map(|l| {
                let key = l.split(':').next().unwrap();
                match KEYS.iter().position(|k| *k == key) {
                    Some(i) => format!("{:<16}{:>8} kB", format!("{key}:"), kb[i]),
                    None => l.to_string(),
                }
                .into_bytes()
            })
            .collect();
        for (at, j) in junk {
            let key = j.split(|&b| b == b':').next().unwrap_or_default();
            if !j.contains(&b':') || !KEYS.iter().any(|k| k.as_bytes() == key) {
                lines.insert(at.index(lines.len() + 1), j);
            }
        }
        let m = meminfo::parse(&lines.join(&b'\n')).expect("well-formed meminfo");
        prop_assert_eq!(
            [m.mem_total_bytes, m.shmem_bytes, m.swap_total_bytes, m.swap_free_bytes, m.hugepage_bytes],
            kb.map(|v| v * 1024)
        );
    }

    #[test]
    fn cgroup_membership_round_trips(
        path in cgroup_path(),
        v1 in any::<bool>(),
        at in any::<Index>(),
    ) {
        let (base, line, version) = if v1 {
            (CGROUP_HYBRID, format!("4:memory:{path}"), CgroupVersion::V1)
        } else {
            (CGROUP_V2, format!("0::{path}"), CgroupVersion::V2)
        };
        let mut lines: Vec<String> = std::str::from_utf8(base)
            .unwrap()
            .lines()
            .filter(|l| !(l.starts_with("4:memory:") || l.starts_with("0::")))
            .map(str::to_string)
            .collect();
        lines.insert(at.index(lines.len() + 1), line);
        prop_assert_eq!(
            cgroup::parse_process(lines.join("\n").as_bytes(), version),
            Some(path)
        );
    }

    /// A cgroup path, however hostile, never leads `memory.stat` outside the mounted hierarchy.
    #[test]
    fn cgroup_stat_path_stays_under_the_mount(
        mp in mount_point(),
        root in prop_oneof![Just("/".to_string()), cgroup_path()],
        path in prop_oneof![cgroup_path(), "(/\\.\\.|/[a-z]{1,3}){1,6}"],
    ) {
        let text = format!(
            "35 31 0:32 {} {} rw,relatime - cgroup cgroup rw,memory\n",
            mangle(&root),
            mangle(&mp)
        );
        let h = cgroup::parse_mounts(text.as_bytes());
        let m = h.v1_memory.as_ref().expect("memory hierarchy parsed");
        prop_assert_eq!(&m.mount_point, &PathBuf::from(&mp));
        prop_assert_eq!(&m.root, &root);
        if let Some(p) = h.stat_path(&path) {
            prop_assert!(p.starts_with(&m.mount_point), "{p:?}");
            let rel = p.strip_prefix(&m.mount_point).unwrap();
            prop_assert!(
                rel.components().all(|c| matches!(c, std::path::Component::Normal(_))),
                "{p:?} leaves the hierarchy"
            );
        }
    }

    #[test]
    fn memory_stat_shmem_round_trips(
        shmem in any::<u64>(),
        v2 in any::<bool>(),
    ) {
        let base = if v2 { MEMORY_STAT_V2 } else { MEMORY_STAT_V1 };
        let text: String = std::str::from_utf8(base)
            .unwrap()
            .lines()
            .map(|l| if l.starts_with("shmem ") { format!("shmem {shmem}\n") } else { format!("{l}\n") })
            .collect();
        prop_assert_eq!(cgroup::parse_stat_shmem(text.as_bytes()), Some(shmem));
    }

    /// pagemap entries are binary: any 64-bit values decode, and the pages found present are
    /// exactly the entries with the present and file bits.
    #[test]
    fn pagemap_entries_decode(
        entries in prop::collection::vec(
            prop_oneof![any::<u64>(), Just(0u64), Just(3u64 << 61), Just(1u64 << 63), Just(1u64 << 61)],
            0..600,
        ),
        first in 0u64..(1 << 52),
    ) {
        let mut ranges = pagemap::PageRanges::new();
        pagemap::decode_present(&entries, first, &mut ranges);
        let want = entries.iter().filter(|&&e| e & (1 << 63) != 0 && e & (1 << 61) != 0).count() as u64;
        prop_assert_eq!(ranges.pages(), want);
        let mut phys = pagemap::PhysPages::default();
        pagemap::decode_pfns(&entries, &mut phys);
        prop_assert!(phys.anon.len() + phys.file.len() <= entries.len());
    }
}

//! `/proc/PID/smaps`: per-mapping PSS. Reading it makes the kernel walk page tables, so it is
//! read only for `--pss` and `--charge touched`.

use super::maps::{dec, parse_line, MapsEntry};

/// One mapping of smaps, with the fields shmwho uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmapsVma {
    /// Its maps line.
    pub entry: MapsEntry,
    /// `Rss`, in bytes.
    pub rss: u64,
    /// `Pss`, in bytes.
    pub pss: u64,
    /// `Private_Clean` + `Private_Dirty`, in bytes.
    pub private: u64,
    /// `Swap`, in bytes.
    pub swap: u64,
    /// `Pss_Shmem` (smaps_rollup; smaps since Linux 6.11 too), in bytes.
    pub pss_shmem: u64,
    /// `ShmemPmdMapped`, in bytes.
    pub shmem_pmd_mapped: u64,
}

/// Parses smaps text into mappings. A truncated final mapping keeps the fields it got.
pub fn parse(text: &[u8]) -> Vec<SmapsVma> {
    let mut out: Vec<SmapsVma> = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let first = line.split(|&b| b == b' ').next().unwrap_or_default();
        if let Some(key) = first.strip_suffix(b":") {
            let Some(vma) = out.last_mut() else { continue };
            let bytes = || -> Option<u64> {
                let v = line[first.len()..].trim_ascii();
                dec(v.strip_suffix(b" kB")?.trim_ascii())?.checked_mul(1024)
            };
            match key {
                b"Rss" => vma.rss = bytes().unwrap_or(0),
                b"Pss" => vma.pss = bytes().unwrap_or(0),
                b"Private_Clean" | b"Private_Dirty" => {
                    vma.private = vma.private.saturating_add(bytes().unwrap_or(0))
                }
                b"Swap" => vma.swap = bytes().unwrap_or(0),
                b"Pss_Shmem" => vma.pss_shmem = bytes().unwrap_or(0),
                b"ShmemPmdMapped" => vma.shmem_pmd_mapped = bytes().unwrap_or(0),
                _ => {}
            }
        } else if let Some(entry) = parse_line(line) {
            out.push(SmapsVma {
                entry,
                rss: 0,
                pss: 0,
                private: 0,
                swap: 0,
                pss_shmem: 0,
                shmem_pmd_mapped: 0,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_fixture() {
        let vmas = parse(include_bytes!("../../../tests/fixtures/smaps_lab.txt"));
        let maps: Vec<_> =
            super::super::maps::parse(include_bytes!("../../../tests/fixtures/maps_lab.txt"))
                .collect();
        assert!(!vmas.is_empty());
        let zero = vmas
            .iter()
            .find(|v| v.entry.path == b"/dev/zero (deleted)")
            .unwrap();
        // The fixture wrote exactly one page of its 1 MiB anonymous shared mapping.
        assert_eq!(zero.rss, 4096);
        assert_eq!(zero.pss, 4096);
        assert_eq!(
            zero.private, 4096,
            "the only mapper's shmem page is 'private'"
        );
        // Same mappings as maps (python's own mmaps only: the fixture was captured in one go).
        assert!(vmas.len() + 2 >= maps.len());
    }

    #[test]
    fn rollup_gives_its_shmem_figures() {
        let text = b"00400000-7ffc8d7e5000 ---p 00000000 00:00 0                          [rollup]\nRss:               19280 kB\nPss:                9240 kB\nPss_Shmem:          1674 kB\nPrivate_Clean:      7056 kB\nPrivate_Dirty:      1924 kB\nShmemPmdMapped:     2048 kB\n";
        let v = parse(text);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].pss, 9240 * 1024);
        assert_eq!(v[0].pss_shmem, 1674 * 1024);
        assert_eq!(v[0].private, (7056 + 1924) * 1024);
        assert_eq!(v[0].shmem_pmd_mapped, 2048 * 1024);
    }

    #[test]
    fn truncated_mapping_keeps_what_it_got() {
        let text = b"1000-3000 rw-s 00000000 00:01 5    /dev/zero (deleted)\nSize:  8 kB\nRss:   8 kB\nPss:   4";
        let vmas = parse(text);
        assert_eq!(vmas.len(), 1);
        assert_eq!(vmas[0].rss, 8192);
        assert_eq!(vmas[0].pss, 0);
    }

    #[test]
    fn vmflags_line_is_not_a_mapping() {
        let text = b"1000-3000 rw-s 00000000 00:01 5 /dev/zero (deleted)\nVmFlags: rd wr sh mr mw me ms sd\n";
        assert_eq!(parse(text).len(), 1);
    }
}

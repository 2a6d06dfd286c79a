//! `/proc/meminfo`: the five figures shmwho reads.
//!
//! Hand-written rather than procfs-core's `Meminfo`, which panics on a field name ending in a
//! multi-byte character (it cuts the colon off by byte index) and, in debug builds, on a value
//! whose unit conversion overflows (found by tests/proptest_parsers.rs); it also fails the
//! whole read when any of ~20 fields shmwho never uses is missing.

use super::maps::dec;
use crate::model::Meminfo;

/// Parses meminfo text; `None` when `MemTotal` is missing or a field shmwho reads is malformed.
/// Fields it does not read are ignored, whatever they hold.
pub fn parse(text: &[u8]) -> Option<Meminfo> {
    let mut m = Meminfo::default();
    let mut have_total = false;
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let field = match &line[..colon] {
            b"MemTotal" => {
                have_total = true;
                &mut m.mem_total_bytes
            }
            b"Shmem" => &mut m.shmem_bytes,
            b"SwapTotal" => &mut m.swap_total_bytes,
            b"SwapFree" => &mut m.swap_free_bytes,
            b"Hugepagesize" => &mut m.hugepage_bytes,
            _ => continue,
        };
        *field = bytes(&line[colon + 1..])?;
    }
    have_total.then_some(m)
}

/// `   1234 kB` → bytes; a bare number is taken as bytes.
fn bytes(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    match v.strip_suffix(b"kB") {
        Some(n) => dec(n.trim_ascii())?.checked_mul(1024),
        None => dec(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_fixture() {
        let m = parse(include_bytes!("../../../tests/fixtures/meminfo.txt")).unwrap();
        assert_eq!(m.mem_total_bytes, 24684084 * 1024);
        assert_eq!(m.hugepage_bytes, 2048 * 1024);
        assert!(m.shmem_bytes > 0);
        assert_eq!(m.swap_used_bytes(), 0);
    }

    #[test]
    fn hostile_input() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"MemTotal\xc3\xa9 5 kB\n"), None);
        assert_eq!(parse(b"MemTotal: 18446744073709551615 kB\n"), None);
        assert_eq!(parse(b"MemTotal: 5 kB\nShmem: x kB\n"), None);
        let m =
            parse(b"MemTotal: 5 kB\nWeird\xff: 99999999999999999999999 GB\nShmem:\t 3 kB").unwrap();
        assert_eq!((m.mem_total_bytes, m.shmem_bytes), (5120, 3072));
    }
}

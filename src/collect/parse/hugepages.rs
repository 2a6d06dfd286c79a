//! `/sys/kernel/mm/hugepages/hugepages-<N>kB` names and hugetlbfs's `pagesize=` option.

/// The page size a pool directory's name gives: `hugepages-2048kB` → 2 MiB.
pub fn pool_page_size(dir_name: &str) -> Option<u64> {
    let kib: u64 = dir_name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    kib.checked_mul(1024).filter(|&b| b > 0)
}

/// hugetlbfs's `pagesize=` mount option as the kernel prints it (`2M`, `1024M`, `1G`, `64K`),
/// in bytes.
pub fn option_size(value: &str) -> Option<u64> {
    let (digits, shift) = match value.as_bytes().last()? {
        b'K' | b'k' => (&value[..value.len() - 1], 10),
        b'M' | b'm' => (&value[..value.len() - 1], 20),
        b'G' | b'g' => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << shift).filter(|&b| b > 0)
}

/// A pool counter file (`nr_hugepages`, ...): one decimal number.
pub fn counter(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_options() {
        assert_eq!(pool_page_size("hugepages-2048kB"), Some(2 << 20));
        assert_eq!(pool_page_size("hugepages-1048576kB"), Some(1 << 30));
        assert_eq!(pool_page_size("hugepages-0kB"), None);
        assert_eq!(pool_page_size("hugepages-2048"), None);
        assert_eq!(pool_page_size("hugepages-99999999999999999999kB"), None);
        assert_eq!(option_size("2M"), Some(2 << 20));
        assert_eq!(option_size("1024M"), Some(1 << 30));
        assert_eq!(option_size("1G"), Some(1 << 30));
        assert_eq!(option_size("64K"), Some(64 << 10));
        assert_eq!(option_size("M"), None);
        assert_eq!(option_size(""), None);
        assert_eq!(option_size("99999999999999G"), None);
        assert_eq!(counter(b"12\n"), Some(12));
        assert_eq!(counter(b"x"), None);
    }
}

//! The hugetlb pools and the devices hugetlb memory shows up on.
//!
//! MAP_HUGETLB mappings, MFD_HUGETLB memfds and SHM_HUGETLB segments live on the kernel's
//! internal hugetlbfs mount of their page size, which mountinfo does not list: its device is
//! learnt from a MFD_HUGETLB memfd of our own (creating one allocates no huge page).

use super::parse::hugepages;
use super::HostPaths;
use crate::model::HugePool;
use std::collections::HashMap;

/// Every pool under `/sys/kernel/mm/hugepages`, by page size; empty without hugetlb.
pub(crate) fn read_pools(paths: &HostPaths) -> Vec<HugePool> {
    let dir = paths.hugepages_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut pools: Vec<HugePool> = entries
        .flatten()
        .filter_map(|e| {
            let size = hugepages::pool_page_size(e.file_name().to_str()?)?;
            let read = |f: &str| {
                std::fs::read(e.path().join(f))
                    .ok()
                    .and_then(|t| hugepages::counter(&t))
            };
            Some(HugePool {
                page_size_bytes: size,
                total_pages: read("nr_hugepages")?,
                free_pages: read("free_hugepages")?,
                reserved_pages: read("resv_hugepages").unwrap_or(0),
            })
        })
        .collect();
    pools.sort_by_key(|p| p.page_size_bytes);
    pools
}

/// Device of the internal hugetlbfs mount → its page size, for each pool size.
pub(crate) fn internal_devices(pools: &[HugePool]) -> HashMap<u64, u64> {
    let mut devs = HashMap::new();
    for pool in pools {
        let size = pool.page_size_bytes;
        if !size.is_power_of_two() {
            continue;
        }
        // MFD_HUGETLB with the page size's log2 in bits 26..31 (MFD_HUGE_SHIFT).
        let bits = rustix::fs::MemfdFlags::CLOEXEC.bits()
            | rustix::fs::MemfdFlags::HUGETLB.bits()
            | (size.trailing_zeros() << 26);
        let flags = rustix::fs::MemfdFlags::from_bits_retain(bits);
        if let Ok(fd) = rustix::fs::memfd_create("shmwho-hugetlb-probe", flags) {
            if let Ok(st) = rustix::fs::fstat(&fd) {
                devs.insert(st.st_dev, size);
            }
        }
    }
    devs
}

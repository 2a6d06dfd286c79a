//! `/proc/zoneinfo`: how far the kernel's per-CPU counters may keep `Shmem` from the truth.
//!
//! `Shmem` is a per-node counter that each CPU updates in a local delta and folds in only when
//! the delta passes that CPU's threshold for the node: the largest `vm stats threshold` of the
//! node's zones (mm/vmstat.c, `refresh_zone_stat_thresholds`). The sum of those thresholds, in
//! pages, bounds how far /proc/meminfo's `Shmem` may be off either way.

use std::collections::HashMap;

/// Pages `Shmem` may be off by: per node and CPU, the largest threshold of the node's zones,
/// summed. 0 when the text has none.
pub fn shmem_drift_pages(text: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(text);
    let mut node: Option<u64> = None;
    let mut cpu: Option<u64> = None;
    let mut by_node_cpu: HashMap<(u64, u64), u64> = HashMap::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = line.strip_prefix("Node ") {
            node = rest.split(',').next().and_then(|n| n.trim().parse().ok());
            cpu = None;
        } else if let Some(c) = t.strip_prefix("cpu:") {
            cpu = c.trim().parse().ok();
        } else if let Some(v) = t.strip_prefix("vm stats threshold:") {
            if let (Some(n), Some(c), Ok(v)) = (node, cpu, v.trim().parse::<u64>()) {
                let e = by_node_cpu.entry((n, c)).or_default();
                *e = (*e).max(v);
            }
        }
    }
    by_node_cpu.values().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_zone_threshold_per_node_and_cpu() {
        let text = b"Node 0, zone      DMA\n  pagesets\n    cpu: 0\n              count: 0\n  vm stats threshold: 4\n    cpu: 1\n  vm stats threshold: 4\nNode 0, zone    DMA32\n  pagesets\n    cpu: 0\n  vm stats threshold: 24\n    cpu: 1\n  vm stats threshold: 24\nNode 1, zone   Normal\n  pagesets\n    cpu: 0\n  vm stats threshold: 30\n";
        assert_eq!(shmem_drift_pages(text), 24 + 24 + 30);
        assert_eq!(shmem_drift_pages(b""), 0);
        assert_eq!(shmem_drift_pages(b"vm stats threshold: 9\ncpu: x\n"), 0);
    }

    #[test]
    fn this_hosts_zoneinfo_parses() {
        // Any Linux has at least one zone with per-CPU pagesets.
        let text = std::fs::read("/proc/zoneinfo").unwrap();
        assert!(shmem_drift_pages(&text) > 0);
    }
}

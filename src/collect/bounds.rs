//! Figures no host can have. A value read from the kernel (or a hostile fake of it) that is
//! more than the host's memory and swap together is capped there and marked, never carried
//! into a sum where it would wrap.

use crate::model::{Accuracy, EstimateReason, Meminfo, Object, Process};

/// Most bytes one object or process can hold: memory plus swap (from meminfo), or 2^53 bytes
/// (8 PiB, still exact in a JSON double) when meminfo gave nothing.
pub fn ceiling(m: &Meminfo) -> u64 {
    match m.mem_total_bytes.saturating_add(m.swap_total_bytes) {
        0 => MAX_BYTES,
        n => n.min(MAX_BYTES),
    }
}

/// More memory than any host has (8 PiB), and still exact in a JSON double: a larger resident
/// or swapped figure is not a measurement.
pub const MAX_BYTES: u64 = 1 << 53;

/// Caps every number under a key ending in `_bytes` in a JSON document (a record `diff`
/// reads) to ±[`MAX_BYTES`], so no delta of two of them can overflow; returns how many were
/// capped. Sizes of SysV segments may be larger in truth; a diff of them is then capped too.
pub fn cap_json_bytes(v: &mut serde_json::Value) -> usize {
    use serde_json::Value;
    let max = MAX_BYTES as f64;
    let mut capped = 0;
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::Number(n) if k.ends_with("_bytes") => {
                        let f = n.as_f64().unwrap_or(0.0);
                        if f > max {
                            *x = Value::from(MAX_BYTES);
                            capped += 1;
                        } else if f < -max {
                            *x = Value::from(-(MAX_BYTES as i64));
                            capped += 1;
                        }
                    }
                    _ => capped += cap_json_bytes(x),
                }
            }
        }
        Value::Array(a) => capped += a.iter_mut().map(cap_json_bytes).sum::<usize>(),
        _ => {}
    }
    capped
}

/// Caps an object's resident and swapped bytes at `ceiling` (together); a capped object is an
/// estimate for [`EstimateReason::AbsurdValue`]. True when it was capped.
pub fn object(o: &mut Object, ceiling: u64) -> bool {
    if o.resident_bytes.saturating_add(o.swap_bytes) <= ceiling {
        return false;
    }
    o.resident_bytes = o.resident_bytes.min(ceiling);
    o.swap_bytes = o.swap_bytes.min(ceiling - o.resident_bytes);
    o.accuracy = Accuracy::Estimate(EstimateReason::AbsurdValue);
    true
}

/// Caps a process's counters at `ceiling` each; true when one was capped.
pub fn process(p: &mut Process, ceiling: u64) -> bool {
    let mut capped = false;
    for v in [
        &mut p.rss_bytes,
        &mut p.rss_anon_bytes,
        &mut p.rss_file_bytes,
        &mut p.rss_shmem_bytes,
        &mut p.swap_bytes,
    ] {
        if *v > ceiling {
            *v = ceiling;
            capped = true;
        }
    }
    if let Some(s) = &mut p.smaps {
        for v in [&mut s.pss_bytes, &mut s.uss_bytes] {
            if *v > ceiling {
                *v = ceiling;
                capped = true;
            }
        }
    }
    capped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_what_cannot_exist() {
        let m = Meminfo {
            mem_total_bytes: 1 << 30,
            swap_total_bytes: 1 << 30,
            ..Meminfo::default()
        };
        let c = ceiling(&m);
        assert_eq!(c, 2 << 30);
        let mut p = Process {
            rss_bytes: u64::MAX - 5,
            rss_shmem_bytes: 4096,
            ..Process::default()
        };
        assert!(process(&mut p, c));
        assert_eq!((p.rss_bytes, p.rss_shmem_bytes), (c, 4096));
        assert_eq!(ceiling(&Meminfo::default()), 1 << 53);
    }

    #[test]
    fn caps_absurd_figures_in_a_record() {
        let mut v = serde_json::json!({
            "meminfo_shmem_bytes": 4096,
            "unexplained_bytes": -1.8e19,
            "objects": [{"resident_bytes": 18446744073709551615u64, "inode": 18446744073709551615u64}],
        });
        assert_eq!(cap_json_bytes(&mut v), 2);
        assert_eq!(v["objects"][0]["resident_bytes"], MAX_BYTES);
        assert_eq!(v["objects"][0]["inode"], u64::MAX, "not a byte figure");
        assert_eq!(v["unexplained_bytes"], -(MAX_BYTES as i64));
        assert_eq!(v["meminfo_shmem_bytes"], 4096);
    }
}

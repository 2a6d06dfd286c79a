//! Lower bounds for objects that could not be measured, from their holders' `RssShmem`
//! (docs/facts.md #9). Pure arithmetic.
//!
//! `RssShmem(p)` counts every shmem page process `p` maps, so the pages of object A that `p`
//! maps are at least `RssShmem(p)` minus what `p` can map of everything else (never more than
//! the other objects' measured resident size, or than their mapped length when unmeasured),
//! minus what `p` maps from other major-0 devices. The bound never exceeds the truth.

use std::collections::HashMap;

/// What the mappings say about one object.
pub(super) struct Mapped<'a> {
    /// Resident bytes when measured exactly.
    pub measured: Option<u64>,
    /// Bytes mapped of it, by process index.
    pub mapped_len: &'a HashMap<usize, u64>,
    /// Largest smaps `Rss` of one of its mappings (0 without smaps): itself a lower bound.
    pub max_mapping_rss: u64,
}

/// What a process's counters say about all the shmem it maps.
pub(super) struct Mapper {
    /// `RssShmem` from status.
    pub rss_shmem: u64,
    /// Bytes it maps from major-0 devices that are not shmem or tmpfs.
    pub other_anon_dev_mapped: u64,
}

/// The lower bound of the resident bytes of each object in `unmeasured` (indices into
/// `objects`), in that order.
pub(super) fn lower_bounds(
    objects: &[Mapped],
    mappers: &[Mapper],
    unmeasured: &[usize],
) -> Vec<u64> {
    let can_map = |j: usize, len: u64| objects[j].measured.map_or(len, |u| u.min(len));
    // What each process can map of every object, summed once per process: summing it over
    // every other object for each unmeasured one was quadratic (100,000 mappings of one
    // unprivileged process: minutes; see bench/scale.sh).
    let mut can_map_all = vec![0u64; mappers.len()];
    for (j, o) in objects.iter().enumerate() {
        for (&pi, &len) in o.mapped_len {
            can_map_all[pi] = can_map_all[pi].saturating_add(can_map(j, len));
        }
    }
    unmeasured
        .iter()
        .map(|&a| {
            let mut lb = objects[a].max_mapping_rss;
            for (&pi, &len_a) in objects[a].mapped_len {
                let others = can_map_all[pi].saturating_sub(can_map(a, len_a));
                let p_bound = mappers[pi]
                    .rss_shmem
                    .saturating_sub(others)
                    .saturating_sub(mappers[pi].other_anon_dev_mapped)
                    .min(len_a);
                lb = lb.max(p_bound);
            }
            lb
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(v: &[(usize, u64)]) -> HashMap<usize, u64> {
        v.iter().copied().collect()
    }

    fn mapper(rss_shmem: u64) -> Mapper {
        Mapper {
            rss_shmem,
            other_anon_dev_mapped: 0,
        }
    }

    #[test]
    fn measured_neighbours_are_subtracted_at_their_size() {
        // p0 maps A (unmeasured, 100) and B (measured: 30 resident of 50 mapped); RssShmem 80.
        let (a, b) = (lens(&[(0, 100)]), lens(&[(0, 50)]));
        let objects = [
            Mapped {
                measured: None,
                mapped_len: &a,
                max_mapping_rss: 0,
            },
            Mapped {
                measured: Some(30),
                mapped_len: &b,
                max_mapping_rss: 0,
            },
        ];
        assert_eq!(lower_bounds(&objects, &[mapper(80)], &[0]), vec![50]);
        // Never above what the process maps of A.
        assert_eq!(lower_bounds(&objects, &[mapper(500)], &[0]), vec![100]);
        // Never below A's largest mapping's Rss.
        let objects = [
            Mapped {
                measured: None,
                mapped_len: &a,
                max_mapping_rss: 60,
            },
            Mapped {
                measured: Some(30),
                mapped_len: &b,
                max_mapping_rss: 0,
            },
        ];
        assert_eq!(lower_bounds(&objects, &[mapper(80)], &[0]), vec![60]);
    }

    #[test]
    fn unmeasured_neighbours_count_at_their_mapped_length() {
        // A and C unmeasured, 40 each, both mapped by p0 with RssShmem 60: either could hold
        // all 40 of its pages, so each is at least 20.
        let (a, c) = (lens(&[(0, 40)]), lens(&[(0, 40)]));
        let objects = [
            Mapped {
                measured: None,
                mapped_len: &a,
                max_mapping_rss: 0,
            },
            Mapped {
                measured: None,
                mapped_len: &c,
                max_mapping_rss: 0,
            },
        ];
        assert_eq!(lower_bounds(&objects, &[mapper(60)], &[0, 1]), vec![20, 20]);
        // Other major-0 mappings (not shmem) may be what RssShmem counts: subtracted.
        let m = Mapper {
            rss_shmem: 60,
            other_anon_dev_mapped: 15,
        };
        assert_eq!(lower_bounds(&objects, &[m], &[0, 1]), vec![5, 5]);
    }

    #[test]
    fn best_holder_wins_and_nothing_underflows() {
        // A mapped by p0 (RssShmem 10, lots else mapped) and p1 (RssShmem 70, nothing else).
        let a = lens(&[(0, 100), (1, 100)]);
        let big = lens(&[(0, 1000)]);
        let objects = [
            Mapped {
                measured: None,
                mapped_len: &a,
                max_mapping_rss: 0,
            },
            Mapped {
                measured: None,
                mapped_len: &big,
                max_mapping_rss: 0,
            },
        ];
        assert_eq!(
            lower_bounds(&objects, &[mapper(10), mapper(70)], &[0]),
            vec![70]
        );
        // RssShmem below what the rest can hold: no bound, not an underflow.
        assert_eq!(
            lower_bounds(&objects, &[mapper(5), mapper(0)], &[0]),
            vec![0]
        );
    }
}

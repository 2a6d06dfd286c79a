//! What a process that scans again and again (the exporter, `top`) keeps of the `task`
//! program's walks, so that the next iteration walks only the processes whose mappings changed.
//!
//! The kernel's map holds, by tgid, the [`Generation`] of each walk kept here, and nothing
//! else: it is set here after the walks were read, never by the program. The program skips a
//! process whose generation is the one in the map; its mappings are then the walk kept here.
//! A skipped process with no walk kept (which the map should not allow) keeps no mappings: the
//! scan reads its maps, and its key leaves the map. So the map can only save walks, never
//! give a process another's or an older walk.

use super::sys;
use super::tasks::{Generation, TaskRecord, VmaRecord};
use rustix::fd::OwnedFd;
use std::collections::HashMap;

/// The walks kept, and the map the program reads.
pub(super) struct Walks {
    map: OwnedFd,
    kept: HashMap<i32, (Generation, Vec<VmaRecord>)>,
}

/// What one iteration changes in the map.
#[derive(Debug, Default, PartialEq, Eq)]
struct Change {
    /// Keys to set, with their values.
    set: Vec<(u32, [u8; 16])>,
    /// Keys to remove.
    gone: Vec<u32>,
    /// Processes whose walk was skipped and taken from the walks kept.
    reused: usize,
}

impl Walks {
    pub fn new(map: OwnedFd) -> Self {
        Walks {
            map,
            kept: HashMap::new(),
        }
    }

    /// Gives each process of `tasks` whose walk was skipped the mappings of the walk kept,
    /// keeps the walks made, and sets the map to match. Returns how many walks were reused.
    pub fn apply(&mut self, tasks: &mut HashMap<i32, TaskRecord>) -> usize {
        let change = settle(&mut self.kept, tasks);
        // Removed first: a key the map keeps without a walk here only costs a read of maps.
        sys::delete_u32_keys(&self.map, &change.gone);
        let (keys, values): (Vec<u32>, Vec<[u8; 16]>) = change.set.into_iter().unzip();
        let set = sys::update_u32_keys(&self.map, &keys, &values);
        // Keys the kernel did not take (out of memory) are walked again next time.
        for key in &keys[set..] {
            self.kept.remove(&(*key as i32));
        }
        change.reused
    }
}

/// [`Walks::apply`] without the map: the new walks kept, and what the map must change.
fn settle(
    kept: &mut HashMap<i32, (Generation, Vec<VmaRecord>)>,
    tasks: &mut HashMap<i32, TaskRecord>,
) -> Change {
    let mut change = Change::default();
    let mut next = HashMap::with_capacity(tasks.len());
    for (&pid, t) in tasks.iter_mut() {
        let before = kept.remove(&pid);
        let in_map = before.is_some();
        match (t.unchanged, t.generation, before) {
            (true, Some(g), Some((was, vmas))) if g == was => {
                t.vmas = Some(vmas.clone());
                next.insert(pid, (was, vmas));
                change.reused += 1;
            }
            // The program found a key that no walk here backs: read maps, drop the key.
            (true, _, _) => change.gone.push(pid as u32),
            (false, Some(g), _) => match &t.vmas {
                Some(vmas) => {
                    change.set.push((pid as u32, g.value()));
                    next.insert(pid, (g, vmas.clone()));
                }
                None if in_map => change.gone.push(pid as u32),
                None => {}
            },
            (false, None, _) if in_map => change.gone.push(pid as u32),
            (false, None, _) => {}
        }
    }
    // Processes that are gone.
    change.gone.extend(kept.keys().map(|&pid| pid as u32));
    *kept = next;
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(seq: u32) -> Generation {
        Generation {
            start_ns: 100,
            exec: 1,
            seq,
        }
    }

    fn vma(start: u64) -> VmaRecord {
        VmaRecord {
            start,
            end: start + 4096,
            shared: true,
            offset: 0,
            dev: 1,
            inode: 7,
        }
    }

    fn task(
        generation: Option<Generation>,
        unchanged: bool,
        vmas: Option<Vec<VmaRecord>>,
    ) -> TaskRecord {
        TaskRecord {
            vmas,
            generation,
            unchanged,
            ..TaskRecord::started(100)
        }
    }

    #[test]
    fn walks_are_kept_reused_and_dropped() {
        let mut kept = HashMap::new();
        // First iteration: two walks, both kept and set.
        let mut tasks = HashMap::from([
            (1, task(Some(gen(2)), false, Some(vec![vma(0x1000)]))),
            (2, task(Some(gen(4)), false, Some(vec![]))),
        ]);
        let c = settle(&mut kept, &mut tasks);
        assert_eq!(c.set.len(), 2);
        assert!(c.gone.is_empty());
        assert_eq!(kept.len(), 2);

        // Second: 1 skipped (reused), 2 walked again at a new generation, 3 is new.
        let mut tasks = HashMap::from([
            (1, task(Some(gen(2)), true, None)),
            (2, task(Some(gen(6)), false, Some(vec![vma(0x2000)]))),
            (3, task(Some(gen(2)), false, Some(vec![]))),
        ]);
        let c = settle(&mut kept, &mut tasks);
        assert_eq!(tasks[&1].vmas.as_deref(), Some(&[vma(0x1000)][..]));
        assert_eq!(c.reused, 1);
        let mut set: Vec<u32> = c.set.iter().map(|s| s.0).collect();
        set.sort_unstable();
        assert_eq!(set, [2, 3]);
        assert_eq!(
            c.set.iter().find(|s| s.0 == 2).map(|s| s.1),
            Some(gen(6).value())
        );

        // Third: 1 exited, 2 skipped with no walk kept of that generation (it cannot be
        // trusted: no mappings, key dropped), 3 busy (not listed: key dropped).
        let mut tasks = HashMap::from([
            (2, task(Some(gen(4)), true, None)),
            (3, task(Some(gen(2)), false, None)),
        ]);
        let c = settle(&mut kept, &mut tasks);
        assert_eq!(tasks[&2].vmas, None);
        let mut gone = c.gone.clone();
        gone.sort_unstable();
        assert_eq!(gone, [1, 2, 3]);
        assert!(c.set.is_empty());
        assert_eq!(c.reused, 0);
        assert!(kept.is_empty());
    }

    #[test]
    fn a_walk_changing_as_it_ran_is_not_kept() {
        // An odd sequence leaves the record without a generation (`tasks::parse`).
        let mut kept = HashMap::new();
        let mut tasks = HashMap::from([(1, task(None, false, Some(vec![vma(0x1000)])))]);
        let c = settle(&mut kept, &mut tasks);
        assert_eq!(c, Change::default());
        assert!(kept.is_empty());
        assert_eq!(
            tasks[&1].vmas.as_deref(),
            Some(&[vma(0x1000)][..]),
            "used, not kept"
        );
    }

    #[test]
    fn another_process_under_the_pid_gets_no_walk() {
        let mut kept = HashMap::from([(1, (gen(2), vec![vma(0x1000)]))]);
        let other = Generation {
            start_ns: 999,
            ..gen(2)
        };
        let mut tasks = HashMap::from([(1, task(Some(other), true, None))]);
        let c = settle(&mut kept, &mut tasks);
        assert_eq!(tasks[&1].vmas, None);
        assert_eq!(c.gone, [1]);
    }
}

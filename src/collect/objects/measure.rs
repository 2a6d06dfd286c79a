//! Measuring one object: `stat` of the first handle that still names it, and the SysV table's
//! own figures.

use super::super::measure::{self, InodeStat};
use super::super::Context;
use crate::model::{
    Accuracy, EstimateReason, FileDetail, Meminfo, Object, ObjectId, Pid, SysvSegment,
};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// A way to reach an object's inode.
#[derive(Clone, Debug)]
pub(super) enum Handle {
    /// `/proc/PID/fd/N`: works for the owner without capabilities (docs/facts.md #7).
    Fd(PathBuf),
    /// A path in shmwho's own mount namespace.
    Path(PathBuf),
    /// `/proc/PID/map_files/START-END`: needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN, and
    /// takes PID's mmap_lock (so is read under `collect::deadline`).
    MapFiles(Pid, PathBuf),
    /// No path reaches it any more (a file on a hidden mount, seen in a copy of its
    /// namespace that is gone): the `lstat` taken there.
    Measured(InodeStat, Option<u64>),
}

impl Handle {
    fn path(&self) -> &Path {
        match self {
            Handle::Fd(p) | Handle::Path(p) | Handle::MapFiles(_, p) => p,
            Handle::Measured(..) => Path::new(""),
        }
    }
    fn rank(&self) -> u8 {
        match self {
            Handle::Fd(_) => 0,
            Handle::Path(_) => 1,
            Handle::MapFiles(..) => 2,
            Handle::Measured(..) => 3,
        }
    }
}

/// An object being built: its handles and what its mappings say about it.
pub(super) struct Draft {
    pub obj: Object,
    pub handles: Vec<Handle>,
    /// Pages of this object a holder may have in its page tables, at most (mapped length).
    pub mapped_len: HashMap<usize, u64>,
    /// Largest smaps `Rss` of one of its mappings: a lower bound of its resident size.
    pub max_mapping_rss: u64,
    /// Size as far as mappings show it (end of the furthest mapping), when unmeasured.
    pub mapped_extent: u64,
    /// Mapped by a process read through a thread (leader exited), which has no map_files.
    pub leader_exited: bool,
}

impl Draft {
    pub fn new(obj: Object) -> Draft {
        Draft {
            obj,
            handles: Vec::new(),
            mapped_len: HashMap::new(),
            max_mapping_rss: 0,
            mapped_extent: 0,
            leader_exited: false,
        }
    }

    /// `stat`s the first handle that still names the object.
    pub fn measure(&mut self, ctx: &Context, swap_in_use: bool) -> Result<(), Unmeasured> {
        self.handles.sort_by_key(Handle::rank);
        let expect = match self.obj.id {
            ObjectId::Inode { dev, ino } => (dev, ino),
            // SHM_HUGETLB segments live on the internal hugetlbfs mount, as their maps show.
            ObjectId::Sysv { shmid, .. } => (self.obj.dev.unwrap_or(ctx.shmem_dev), shmid as u64),
        };
        let mut denied = false;
        let mut stuck = false;
        let handles = std::mem::take(&mut self.handles);
        for h in &handles {
            let stat = match h {
                Handle::Measured(st, _) => Ok(*st),
                Handle::MapFiles(pid, path) => {
                    let path = path.clone();
                    match super::super::deadline::call(*pid, "map_files", move || {
                        measure::stat(&path)
                    }) {
                        Some(r) => r,
                        None => {
                            stuck = true;
                            continue; // its memory map is locked: another holder may do
                        }
                    }
                }
                _ => measure::stat(h.path()),
            };
            let st: InodeStat = match stat {
                Ok(st) if (st.dev, st.ino) == expect => st,
                Ok(_) => continue, // pid or fd number reused: another file now
                Err(Errno::PERM) | Err(Errno::ACCESS) => {
                    denied = true;
                    continue;
                }
                Err(_) => continue,
            };
            self.obj.size_bytes = st.size;
            self.obj.resident_bytes = st.allocated;
            self.obj.swap_bytes = 0;
            self.obj.accuracy = Accuracy::Exact;
            if let Some(f) = self.obj.file_mut() {
                fix_deleted(f, st.nlink);
            }
            if let (true, Handle::Measured(_, resident)) = (swap_in_use, h) {
                match resident {
                    Some(r) => {
                        self.obj.resident_bytes = (*r).min(st.allocated);
                        self.obj.swap_bytes = st.allocated - self.obj.resident_bytes;
                    }
                    None => {
                        self.obj.accuracy = Accuracy::Estimate(EstimateReason::SwapSplitUnavailable)
                    }
                }
            } else if swap_in_use && !self.obj.hugetlb {
                let page_size = ctx.page_size;
                let resident = match h {
                    Handle::MapFiles(pid, path) => {
                        let path = path.clone();
                        super::super::deadline::call(*pid, "map_files", move || {
                            super::super::residency::resident_bytes(&path, expect, page_size)
                        })
                        .unwrap_or(Err(super::super::residency::ResidencyError::Stuck))
                    }
                    _ => super::super::residency::resident_bytes(h.path(), expect, page_size),
                };
                match resident {
                    Ok(resident) => {
                        self.obj.resident_bytes = resident.min(st.allocated);
                        self.obj.swap_bytes = st.allocated - self.obj.resident_bytes;
                    }
                    Err(e) => {
                        if let super::super::residency::ResidencyError::Sys(errno) = e {
                            super::super::note_errno(errno);
                        }
                        self.obj.accuracy =
                            Accuracy::Estimate(EstimateReason::SwapSplitUnavailable);
                    }
                }
            }
            return Ok(());
        }
        Err(if stuck {
            Unmeasured::Denied(EstimateReason::HolderStuck)
        } else if denied {
            Unmeasured::Denied(EstimateReason::MapFilesDenied)
        } else {
            Unmeasured::Vanished
        })
    }
}

/// Why no handle of an object could be `stat`ed.
pub(super) enum Unmeasured {
    /// Every handle was refused (EPERM/EACCES) or did not answer in time: estimate it, for
    /// this reason.
    Denied(EstimateReason),
    /// Every holder went away: drop it.
    Vanished,
}

/// maps and fd links append ` (deleted)` to unlinked files, but a file may be *named* so;
/// `st_nlink` settles it.
fn fix_deleted(f: &mut FileDetail, nlink: u64) {
    let now_deleted = nlink == 0;
    if f.deleted && !now_deleted {
        let mut b = std::mem::take(&mut f.path)
            .into_os_string()
            .into_encoded_bytes();
        b.extend_from_slice(b" (deleted)");
        f.path = PathBuf::from(OsString::from_vec(b));
    }
    f.deleted = now_deleted;
}

/// `/proc/sysvipc/shm` overstates a SHM_HUGETLB segment's `rss` by the huge page factor
/// (6.18: 1 GiB for a 2 MiB segment with its one huge page faulted in: the page cache counts
/// 512 base pages per huge folio and the column multiplies by 512 again). A normal segment
/// never holds more than its size in pages, so more than that marks a hugetlb segment, whose
/// true size is the column divided by the factor. Returns (resident, is_hugetlb).
pub(super) fn hugetlb_rss(
    seg: &SysvSegment,
    held: u64,
    meminfo: &Meminfo,
    page: u64,
) -> (u64, bool) {
    let hp = meminfo.hugepage_bytes;
    if hp <= page || held <= seg.size_bytes.div_ceil(page).saturating_mul(page) {
        return (held, false);
    }
    (held / (hp / page), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(size: u64) -> SysvSegment {
        SysvSegment {
            key: crate::model::SysvKey(0),
            shmid: 1,
            perms: 0o600,
            size_bytes: size,
            cpid: 1,
            lpid: 1,
            nattch: 0,
            uid: 0,
            cuid: 0,
            ctime: 0,
            rss_bytes: None,
            swap_bytes: None,
        }
    }

    #[test]
    fn hugetlb_rss_is_divided_back() {
        let mi = Meminfo {
            hugepage_bytes: 2 << 20,
            ..Meminfo::default()
        };
        // 6.18 reports 1 GiB for a 2 MiB hugetlb segment with one huge page.
        assert_eq!(
            hugetlb_rss(&seg(2 << 20), 1 << 30, &mi, 4096),
            (2 << 20, true)
        );
        // A normal segment, fully resident, size not a page multiple.
        assert_eq!(
            hugetlb_rss(&seg(10_000), 12_288, &mi, 4096),
            (12_288, false)
        );
        assert_eq!(hugetlb_rss(&seg(10_000), 0, &mi, 4096), (0, false));
    }
}

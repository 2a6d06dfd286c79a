//! What is on the host beyond the processes: `/dev/shm` files nobody holds, and what each
//! tmpfs mount uses in all.

use super::super::measure::{self, InodeStat};
use super::super::Context;
use crate::model::TmpfsMount;
use std::path::PathBuf;

/// Regular files under our `/dev/shm` (shm_open objects, POSIX semaphores), at most 8 levels
/// deep, named as mountinfo names them. Files on a `/dev/shm` hidden under another mount
/// cannot be reached by path.
pub(super) fn walk_dev_shm(ctx: &Context) -> Vec<(PathBuf, InodeStat)> {
    let named = &ctx.paths.dev_shm;
    let reached = ctx.paths.reach(named);
    let Ok(top) = measure::stat(&reached) else {
        return Vec::new();
    };
    if !ctx.tmpfs.contains_key(&top.dev) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut stack = vec![(named.clone(), reached, 0u32)];
    while let Some((name, dir, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                // A directory that cannot be read is skipped; running out of fds is not that.
                if let Some(errno) = e.raw_os_error() {
                    super::super::note_errno(rustix::io::Errno::from_raw_os_error(errno));
                }
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            let name = name.join(entry.file_name());
            if ft.is_dir() && depth < 8 {
                stack.push((name, path, depth + 1));
            } else if ft.is_file() {
                // lstat: no symlink following, and no open (contents untouched).
                if let Ok(st) = measure::lstat(&path) {
                    if st.dev == top.dev && st.regular {
                        out.push((name, st));
                    }
                }
            }
        }
    }
    out
}

/// What each of our own tmpfs mounts uses in all (statfs), for the reconciliation.
pub(super) fn tmpfs_usage(ctx: &Context) -> Vec<TmpfsMount> {
    let mut mounts: Vec<TmpfsMount> = ctx
        .tmpfs
        .iter()
        .map(|(&dev, (m, ns))| {
            let here = ctx.paths.reach(&m.mount_point);
            let visible = ns.is_none() && measure::stat(&here).is_ok_and(|st| st.dev == dev);
            let used_bytes = if visible {
                rustix::fs::statfs(&here).ok().and_then(|sf| {
                    let blocks = sf.f_blocks;
                    (blocks > 0).then(|| (blocks - sf.f_bfree) * sf.f_bsize as u64)
                })
            } else {
                None
            };
            TmpfsMount {
                mount_point: m.mount_point.clone(),
                dev,
                foreign_ns: *ns,
                used_bytes,
            }
        })
        .collect();
    mounts.sort_by(|a, b| a.mount_point.cmp(&b.mount_point).then(a.dev.cmp(&b.dev)));
    mounts
}

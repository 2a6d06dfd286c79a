//! What is on the host beyond the processes: `/dev/shm` files nobody holds (the tmpfs mounts
//! themselves are measured in `collect::namespaces`).

use super::super::measure::{self, InodeStat};
use super::super::Context;
use std::path::{Path, PathBuf};

/// Regular files under our `/dev/shm` (shm_open objects, POSIX semaphores), at most 8 levels
/// deep, named as mountinfo names them. Files on a `/dev/shm` hidden under another mount
/// cannot be reached by path.
pub(super) fn walk_dev_shm(ctx: &Context) -> Vec<(PathBuf, InodeStat)> {
    walk(ctx, &ctx.paths.dev_shm, |dev| ctx.tmpfs.contains_key(&dev))
}

/// Regular files on each hugetlbfs mount of our own mount namespace, as [`walk_dev_shm`]
/// walks `/dev/shm`: files nobody maps or holds open still hold their huge pages.
pub(super) fn walk_hugetlbfs(ctx: &Context) -> Vec<(PathBuf, InodeStat)> {
    let mut points: Vec<(u64, PathBuf)> = ctx
        .hugetlbfs
        .iter()
        .filter(|(_, (_, ns, _))| ns.is_none())
        .map(|(&dev, (m, _, _))| (dev, m.mount_point.clone()))
        .collect();
    points.sort();
    let mut out = Vec::new();
    for (dev, point) in points {
        out.extend(walk(ctx, &point, |d| d == dev));
    }
    out
}

/// Regular files under mount point `named`, when what is reachable there is a mount whose
/// device `wanted` accepts.
fn walk(ctx: &Context, named: &Path, wanted: impl Fn(u64) -> bool) -> Vec<(PathBuf, InodeStat)> {
    let reached = ctx.paths.reach(named);
    let Ok(top) = measure::stat(&reached) else {
        return Vec::new();
    };
    if !wanted(top.dev) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut stack = vec![(named.to_path_buf(), reached, 0u32)];
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

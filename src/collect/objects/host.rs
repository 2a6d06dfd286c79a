//! What is on the host beyond the processes: `/dev/shm` files nobody holds (the tmpfs mounts
//! themselves are measured in `collect::namespaces`).

use super::super::measure::{self, InodeStat};
use super::super::Context;
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

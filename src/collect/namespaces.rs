//! The mounts of every mount namespace a process lives in (containers): each namespace is read
//! once, through one of its processes (`/proc/PID/mountinfo`, `/proc/PID/root/...`), so the cost
//! grows with namespaces, not processes.
//!
//! - A visible tmpfs is opened through `/proc/PID/root` with `RESOLVE_IN_ROOT` (a container's
//!   symlinks stay inside it), `statfs`ed, and its files walked by fd without following links.
//! - A tmpfs hidden under another mount is revealed in a thread of our own that unshares its
//!   filesystem context, enters the namespace, takes a private copy of it (`unshare`, `MS_PRIVATE`),
//!   and lazily unmounts what lies on top in that copy: the host's mounts are never touched, and
//!   the copy dies with the thread.
//! - IPC namespaces no process is in but an nsfs bind mount pins (`ipc:[N]` in mountinfo) are
//!   opened through that mount, for their SysV segments.

use super::context::{Context, MountNs};
use super::measure::InodeStat;
use super::parse::mountinfo::{self, MountEntry};
use crate::model::{Pid, TmpfsMount};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Files walked on one mount, at most: a container's /tmp may hold many; the rest of the mount
/// is still counted by `statfs`.
const MAX_FILES: usize = 4096;
/// Directory depth walked, as under `/dev/shm`.
const MAX_DEPTH: u32 = 8;

/// Files walked: name, `lstat`, resident bytes when read there.
type Files = Vec<(PathBuf, InodeStat, Option<u64>)>;

/// A file on a tmpfs of another namespace, or on a hidden one.
pub(crate) struct MountFile {
    /// Its path as the namespace names it.
    pub path: PathBuf,
    /// `lstat` taken during the walk.
    pub stat: InodeStat,
    /// Resident bytes, read where it was walked when swap is in use (st_blocks counts swap
    /// too) and no path reaches it later.
    pub resident: Option<u64>,
    /// A path that reaches it from here later, when there is one (not for hidden mounts: the
    /// copy that revealed them is gone).
    pub reach: Option<PathBuf>,
}

/// One tmpfs mount measured, with the files walked on it.
pub(crate) struct MountScan {
    pub mount: TmpfsMount,
    /// The mount point's name in its namespace is `/dev/shm`: its files are POSIX shm.
    pub dev_shm: bool,
    pub files: Vec<MountFile>,
    /// Its mount point was opened (or revealed): `used_bytes` is what statfs says.
    pub reached: bool,
}

/// Measures every tmpfs mount seen (one per device), walking the files of those outside our
/// namespace and of hidden ones (our own `/dev/shm` is walked by path, in `objects`).
pub(crate) fn scan_mounts(ctx: &Context, swap_in_use: bool) -> Vec<MountScan> {
    let mut out: Vec<MountScan> = ctx
        .tmpfs
        .iter()
        .map(|(&dev, (m, ns))| scan_mount(ctx, dev, m, *ns, swap_in_use))
        .collect();
    out.sort_by(|a, b| {
        (a.mount.foreign_ns, &a.mount.mount_point, a.mount.dev).cmp(&(
            b.mount.foreign_ns,
            &b.mount.mount_point,
            b.mount.dev,
        ))
    });
    out
}

fn scan_mount(
    ctx: &Context,
    dev: u64,
    m: &MountEntry,
    ns: Option<u64>,
    swap_in_use: bool,
) -> MountScan {
    let space = ctx.namespaces.get(&ns);
    let pid = space.and_then(|s| s.pid);
    let dev_shm = m.mount_point == Path::new("/dev/shm") || m.mount_point == ctx.paths.dev_shm;
    let mut scan = MountScan {
        mount: TmpfsMount {
            mount_point: m.mount_point.clone(),
            dev,
            foreign_ns: ns,
            used_bytes: None,
            size_bytes: None,
            hidden: false,
            container: pid.and_then(|pid| container_of(ctx, pid)),
        },
        dev_shm,
        files: Vec::new(),
        reached: false,
    };
    match open_dir(ctx, pid, &m.mount_point) {
        Ok(dir) if rustix::fs::fstat(&dir).is_ok_and(|st| st.st_dev == dev) => {
            scan.reached = true;
            (scan.mount.used_bytes, scan.mount.size_bytes) = used_and_size(&dir).unzip();
            // Our own /dev/shm is walked by path, with the other objects.
            if ns.is_some() {
                let base = pid.map(|pid| ctx.pid_path(pid, "root"));
                scan.files = walk(dir, &m.mount_point, dev)
                    .into_iter()
                    .map(|(path, stat, _)| MountFile {
                        reach: base
                            .as_ref()
                            .map(|b| b.join(path.strip_prefix("/").unwrap_or(&path))),
                        path,
                        stat,
                        resident: None,
                    })
                    .collect();
            }
        }
        // Hidden under another mount (or its mount point is gone from view).
        _ => {
            if let Some(space) = space {
                // With the host's / elsewhere, our own mount points are not paths here.
                if pid.is_some() || ctx.paths.mount_root == Path::new("/") {
                    if let Some((used, files)) = reveal(ctx, space, m, swap_in_use) {
                        scan.reached = true;
                        scan.mount.hidden = true;
                        (scan.mount.used_bytes, scan.mount.size_bytes) = used.unzip();
                        scan.files = files
                            .into_iter()
                            .map(|(path, stat, resident)| MountFile {
                                path,
                                stat,
                                resident,
                                reach: None,
                            })
                            .collect();
                    }
                }
            }
        }
    }
    scan
}

/// Opens the directory `path` of the namespace reached through `pid` (ours when `None`), read
/// only, never following a link out of that namespace's root, never blocking.
fn open_dir(ctx: &Context, pid: Option<Pid>, path: &Path) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match pid {
        None => rustix::fs::open(ctx.paths.reach(path), flags, Mode::empty()),
        Some(pid) => open_in_root(ctx, pid, path, flags),
    }
}

/// Opens `path` inside the root of process `pid`, as that process would resolve it.
fn open_in_root(ctx: &Context, pid: Pid, path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let root = rustix::fs::open(
        ctx.pid_path(pid, "root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rustix::fs::openat2(
        &root,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Blocks in use × block size, and the size limit (blocks × block size); None for a mount
/// without a size limit (no blocks reported).
fn used_and_size(dir: &OwnedFd) -> Option<(u64, u64)> {
    let sf = rustix::fs::fstatfs(dir).ok()?;
    let blocks = sf.f_blocks;
    let bsize = sf.f_bsize as u64;
    (blocks > 0).then(|| {
        (
            blocks.saturating_sub(sf.f_bfree).saturating_mul(bsize),
            blocks.saturating_mul(bsize),
        )
    })
}

/// Every tmpfs mount of every mount namespace read that path lookup reaches there (not
/// covered by another mount: a namespace copied from the host keeps the host's /dev/shm under
/// its own), sorted.
pub(crate) fn ns_tmpfs(ctx: &Context) -> Vec<crate::model::NsTmpfs> {
    let mut out: Vec<crate::model::NsTmpfs> = ctx
        .namespaces
        .iter()
        .flat_map(|(ns, space)| {
            space
                .entries
                .iter()
                .filter(|m| m.fs_type == "tmpfs")
                .filter(|m| mountinfo::covering(&space.entries, m).is_empty())
                .map(|m| crate::model::NsTmpfs {
                    mnt_ns: *ns,
                    mount_point: m.mount_point.clone(),
                    dev: m.dev,
                })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Regular files under the directory `dir` (named `named`) on device `dev`, by fd: no link is
/// followed and no file opened.
fn walk(dir: OwnedFd, named: &Path, dev: u64) -> Files {
    let mut out = Vec::new();
    let mut stack = vec![(dir, named.to_path_buf(), 0u32)];
    while let Some((fd, name, depth)) = stack.pop() {
        let Ok(entries) = rustix::fs::Dir::read_from(&fd) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_bytes();
            if file == b"." || file == b".." {
                continue;
            }
            let Ok(st) = rustix::fs::statat(
                &fd,
                entry.file_name(),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            ) else {
                continue;
            };
            if st.st_dev != dev {
                continue;
            }
            let path = name.join(OsStr::from_bytes(file));
            match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::Directory if depth < MAX_DEPTH => {
                    if let Ok(sub) = rustix::fs::openat(
                        &fd,
                        entry.file_name(),
                        OFlags::RDONLY
                            | OFlags::DIRECTORY
                            | OFlags::NOFOLLOW
                            | OFlags::NONBLOCK
                            | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) {
                        stack.push((sub, path, depth + 1));
                    }
                }
                rustix::fs::FileType::RegularFile => {
                    out.push((path, InodeStat::from(st), None));
                    if out.len() >= MAX_FILES {
                        return out;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// `statfs` and the files of mount `target` of namespace `space`, revealed in a private copy of
/// the namespace (see the module comment). None without CAP_SYS_ADMIN, or when what covers it
/// cannot be lifted.
fn reveal(
    ctx: &Context,
    space: &MountNs,
    target: &MountEntry,
    swap_in_use: bool,
) -> Option<(Option<(u64, u64)>, Files)> {
    let mut covering: Vec<PathBuf> = mountinfo::covering(&space.entries, target)
        .into_iter()
        .map(|m| m.mount_point.clone())
        .collect();
    // Highest first: lifting a mount lifts those on it. Stable, so mounts stacked at one path
    // stay in mount order (each unmount of that path lifts the top one).
    covering.sort_by_key(|p| p.components().count());
    if covering.is_empty() {
        return None;
    }
    let ns_fd = match space.pid {
        Some(pid) => Some(
            rustix::fs::open(
                ctx.pid_path(pid, "ns/mnt"),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()?,
        ),
        None => None,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            use rustix::thread::UnshareFlags;
            // SAFETY: this thread is ours and runs only this closure: giving it its own
            // filesystem context and mount namespace changes no state another thread relies
            // on, and both go away when it ends.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::FS) }.ok()?;
            if let Some(fd) = &ns_fd {
                rustix::thread::move_into_link_name_space(
                    fd.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Mount),
                )
                .ok()?;
            }
            // SAFETY: as above.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }.ok()?;
            // Nothing done in the copy may propagate back to the namespace it was taken from.
            rustix::mount::mount_change(
                "/",
                rustix::mount::MountPropagationFlags::REC
                    | rustix::mount::MountPropagationFlags::PRIVATE,
            )
            .ok()?;
            let here =
                |p: &Path| -> bool { rustix::fs::stat(p).is_ok_and(|st| st.st_dev == target.dev) };
            // Each lazy unmount lifts the mount on top at that path. All of it happens in the
            // copy: a wrong guess costs only this reveal.
            for p in &covering {
                if here(&target.mount_point) {
                    break;
                }
                let _ = rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH);
            }
            let dir = rustix::fs::open(
                &target.mount_point,
                OFlags::RDONLY
                    | OFlags::DIRECTORY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()?;
            if rustix::fs::fstat(&dir).ok()?.st_dev != target.dev {
                return None;
            }
            let used = used_and_size(&dir);
            let mut files = walk(dir, &target.mount_point, target.dev);
            if swap_in_use {
                // No path reaches these once the copy is gone: split resident from swapped
                // here (the walk's names are paths in the copy).
                for (path, st, resident) in &mut files {
                    *resident =
                        super::residency::resident_bytes(path, (st.dev, st.ino), ctx.page_size)
                            .ok();
                }
            }
            Some((used, files))
        })
        .join()
        .ok()
        .flatten()
    })
}

/// IPC namespaces pinned by an nsfs bind mount in any namespace read, other than `known`
/// (ours and those processes are in), each with an open fd of it.
pub(crate) fn pinned_ipc(ctx: &Context, known: &HashSet<u64>) -> Vec<(u64, OwnedFd)> {
    // From the kernel's include/uapi/linux/magic.h.
    const NSFS_MAGIC: u64 = 0x6e73_6673;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut out = Vec::new();
    for space in ctx.namespaces.values() {
        for m in space.entries.iter().filter(|m| m.fs_type == "nsfs") {
            let Some(inum) = nsfs_ipc(&m.root) else {
                continue;
            };
            if known.contains(&inum) || !seen.insert(inum) {
                continue;
            }
            // O_NONBLOCK: if the mount point was swapped for a FIFO, the open must not hang.
            let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = match space.pid {
                None => rustix::fs::open(ctx.paths.reach(&m.mount_point), flags, Mode::empty()),
                Some(pid) => open_in_root(ctx, pid, &m.mount_point, flags),
            };
            let Ok(fd) = fd else {
                seen.remove(&inum);
                continue;
            };
            // It must be that very namespace: nsfs, and its inode number.
            #[allow(clippy::unnecessary_cast)]
            let nsfs = rustix::fs::fstatfs(&fd).is_ok_and(|sf| sf.f_type as u64 == NSFS_MAGIC);
            if !nsfs || rustix::fs::fstat(&fd).map_or(true, |st| st.st_ino != inum) {
                seen.remove(&inum);
                continue;
            }
            out.push((inum, fd));
        }
    }
    out.sort_by_key(|p| p.0);
    out
}

/// `ipc:[4026532300]` (the root field of an nsfs mount) → 4026532300.
fn nsfs_ipc(root: &[u8]) -> Option<u64> {
    let rest = root.strip_prefix(b"ipc:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// The container process `pid` runs in, where its cgroup names one (docker, containerd, CRI-O,
/// podman scopes, or a 64-hex-digit id).
fn container_of(ctx: &Context, pid: Pid) -> Option<String> {
    let text = std::fs::read(ctx.pid_path(pid, "cgroup")).ok()?;
    let text = String::from_utf8_lossy(&text);
    // Any hierarchy's path will do: v1 and v2 lines name the same container.
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .find_map(|path| super::container::parse(path).container_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsfs_roots() {
        assert_eq!(nsfs_ipc(b"ipc:[4026532300]"), Some(4026532300));
        assert_eq!(nsfs_ipc(b"mnt:[4026532300]"), None);
        assert_eq!(nsfs_ipc(b"ipc:[x]"), None);
        assert_eq!(nsfs_ipc(b"/"), None);
    }
}

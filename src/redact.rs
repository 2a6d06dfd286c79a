//! What an elevated run (see the privilege module) shows its caller: nothing `ps`, `ipcs` and
//! `/proc/meminfo` would not, beyond each object's kind, sizes, holders and owners.
//!
//! [`CallerView::probe`] finds, with the caller's own rights, which processes the caller can
//! see and read and which objects it could name and open; [`redact`] is a pure function of the
//! snapshot and that view, applied once after the scan.

use crate::model::{ObjectDetail, ObjectId, ObjectKind, Pid, Snapshot, Via};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Shown instead of a name the caller may not learn.
pub const HIDDEN_NAME: &str = "(hidden)";

/// What the caller could see and open itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerView {
    /// Processes the caller can see in `/proc` (hidepid hides the others).
    pub visible: HashSet<Pid>,
    /// Processes whose memory map the caller may read (its own, as ptrace allows).
    pub readable: HashSet<Pid>,
    /// Objects whose name (memfd name, file path) the caller may learn.
    pub named: HashSet<ObjectId>,
    /// Objects the caller could open itself: the only ones `show` draws.
    pub openable: HashSet<ObjectId>,
}

impl CallerView {
    /// Probes with the calling thread's rights: call it with the capabilities off. Opening a
    /// `/proc/PID` file never blocks; `access` checks the real uid without capabilities.
    pub fn probe(snap: &Snapshot, proc_root: &Path) -> CallerView {
        let opens = |pid: Pid, file: &str| {
            std::fs::File::open(proc_root.join(format!("{pid}/{file}"))).is_ok()
        };
        let mut v = CallerView::default();
        for p in &snap.processes {
            if opens(p.pid, "stat") {
                v.visible.insert(p.pid);
                if opens(p.pid, "maps") {
                    v.readable.insert(p.pid);
                }
            }
        }
        let uid = rustix::process::getuid().as_raw();
        for o in &snap.objects {
            let own_holder = o.holders.iter().any(|h| v.readable.contains(&h.pid));
            let (named, openable) = match (o.kind(), o.file()) {
                (ObjectKind::PosixShm | ObjectKind::Tmpfs, Some(f)) if o.foreign_ns.is_none() => {
                    let path = &f.path;
                    let searchable = path.parent().is_some_and(|d| may(d, libc::X_OK));
                    (searchable, searchable && may(path, libc::R_OK))
                }
                (ObjectKind::Sysv, _) => {
                    // As shmat would decide, from what ipcs shows (no group: the segment's gid
                    // is not in /proc/sysvipc/shm as shmwho reads it).
                    let may_read = o.sysv().is_some_and(|s| {
                        s.perms & 0o004 != 0
                            || (s.perms & 0o400 != 0 && (s.uid == uid || s.cuid == uid))
                    });
                    (true, may_read || own_holder)
                }
                _ => (own_holder, own_holder),
            };
            if named {
                v.named.insert(o.id);
            }
            if openable {
                v.openable.insert(o.id);
            }
        }
        v
    }
}

fn may(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) with a NUL-terminated path we own; it reads nothing else.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

/// The snapshot as the caller may see it: processes it cannot see are counted in
/// `notes.hidden` and left out with their holdings (an object only they hold goes too, except
/// a SysV segment, which `ipcs` lists anyway); see [`hide`] for the rest.
pub fn redact(mut snap: Snapshot, view: &CallerView) -> Snapshot {
    snap.objects.retain(|o| {
        o.kind() == ObjectKind::Sysv
            || o.holders.is_empty()
            || o.holders.iter().any(|h| view.visible.contains(&h.pid))
    });
    hide(snap, view)
}

/// Redaction that keeps every object where it is (`show` holds indices into the objects):
/// invisible processes and their holdings are left out and counted in `notes.hidden`; every
/// mapping becomes `0..length` and the views print no address (`notes.addresses_hidden`);
/// names the caller may not learn become [`HIDDEN_NAME`], sizes stay.
pub fn hide(mut snap: Snapshot, view: &CallerView) -> Snapshot {
    let before = snap.processes.len();
    snap.processes.retain(|p| view.visible.contains(&p.pid));
    snap.notes.stuck.retain(|s| view.visible.contains(&s.pid));
    let hidden = before - snap.processes.len();
    snap.notes.hidden = snap
        .notes
        .hidden
        .saturating_add(u32::try_from(hidden).unwrap_or(u32::MAX));
    snap.notes.addresses_hidden = true;
    snap.notes
        .unreadable_processes
        .retain(|p| view.visible.contains(&p.pid));
    // Other namespaces' mounts and other pods' cgroups only through a visible process.
    let namespaces: std::collections::HashSet<u64> =
        snap.processes.iter().filter_map(|p| p.mnt_ns).collect();
    snap.ns_tmpfs
        .retain(|m| m.mnt_ns.is_none_or(|ns| namespaces.contains(&ns)));
    let pods: std::collections::HashSet<&str> = snap
        .processes
        .iter()
        .filter_map(|p| crate::collect::container::pod_cgroup(p.cgroup.as_deref()?))
        .collect();
    let pod_cgroups = std::mem::take(&mut snap.pod_cgroups);
    snap.pod_cgroups = pod_cgroups
        .into_iter()
        .filter(|c| pods.contains(c.path.as_str()))
        .collect();
    for o in &mut snap.objects {
        o.holders.retain(|h| view.visible.contains(&h.pid));
        for h in &mut o.holders {
            // The length stays: it is what `pmap` would give the caller's own processes and
            // the views may use it; where the mapping sits does not.
            if let Via::Map { start, end, .. } = &mut h.via {
                *end = end.saturating_sub(*start);
                *start = 0;
            }
        }
        if !view.named.contains(&o.id) {
            if let ObjectDetail::Memfd { name } = &mut o.detail {
                *name = HIDDEN_NAME.into();
            }
            if let Some(f) = o.file_mut() {
                let dir = f.mount_point.clone().unwrap_or_else(|| PathBuf::from("/"));
                // The mount point is public (/proc/mounts); only what is under it is hidden.
                f.path = if f.path.starts_with(&dir) {
                    dir.join(HIDDEN_NAME)
                } else {
                    PathBuf::from(HIDDEN_NAME)
                };
            }
        }
    }
    snap
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Accuracy, FileDetail, Holder, Object, Process};

    fn object(kind: ObjectKind, ino: u64, holders: &[Pid]) -> Object {
        Object {
            id: ObjectId::Inode { dev: 5, ino },
            detail: match kind {
                ObjectKind::Memfd => ObjectDetail::Memfd {
                    name: "secret-name".to_string(),
                },
                ObjectKind::PosixShm => ObjectDetail::PosixShm(FileDetail {
                    path: PathBuf::from("/dev/shm/private/key"),
                    deleted: false,
                    mount_point: Some(PathBuf::from("/dev/shm")),
                }),
                _ => ObjectDetail::AnonShared,
            },
            dev: Some(5),
            inode: ino,
            size_bytes: 8192,
            page_size_bytes: 4096,
            hugetlb: false,
            resident_bytes: 4096,
            swap_bytes: 0,
            accuracy: Accuracy::Exact,
            holders: holders
                .iter()
                .map(|&pid| Holder {
                    pid,
                    via: Via::Map {
                        start: 0x7f00_0000_0000,
                        end: 0x7f00_0000_2000,
                        offset: 0,
                        shared: true,
                        pss_bytes: None,
                        rss_bytes: None,
                    },
                })
                .collect(),
            foreign_ns: None,
        }
    }

    fn snap() -> Snapshot {
        Snapshot {
            page_size: 4096,
            processes: [1, 2, 3]
                .map(|pid| Process {
                    pid,
                    ..Process::default()
                })
                .to_vec(),
            objects: vec![
                object(ObjectKind::Memfd, 10, &[1, 2]),
                object(ObjectKind::PosixShm, 11, &[3]),
                object(ObjectKind::AnonShared, 12, &[3]),
            ],
            ..Snapshot::default()
        }
    }

    #[test]
    fn hides_processes_addresses_and_names() {
        let view = CallerView {
            visible: [1, 2].into(),
            readable: [1].into(),
            named: [ObjectId::Inode { dev: 5, ino: 10 }].into(),
            openable: HashSet::new(),
        };
        let r = redact(snap(), &view);
        assert_eq!(
            r.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(r.notes.hidden, 1);
        assert!(r.notes.addresses_hidden);
        // Held only by the hidden process 3: gone, not listed with an empty holder list.
        assert_eq!(r.objects.len(), 1);
        let o = &r.objects[0];
        assert!(
            matches!(&o.detail, ObjectDetail::Memfd { name } if name == "secret-name"),
            "named: kept"
        );
        assert_eq!(o.size_bytes, 8192);
        for h in &o.holders {
            assert!(
                matches!(
                    h.via,
                    Via::Map {
                        start: 0,
                        end: 0x2000,
                        ..
                    }
                ),
                "{h:?}"
            );
        }
    }

    #[test]
    fn other_pods_and_namespaces_only_through_visible_processes() {
        let pod = |n: u32| format!("/kubepods/pod0b3c2d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5{n}");
        let mut s = snap();
        for p in &mut s.processes {
            p.mnt_ns = Some(4000 + p.pid as u64);
            p.cgroup = Some(format!("{}/c", pod(p.pid as u32)));
        }
        let tmpfs = |mnt_ns| crate::model::NsTmpfs {
            mnt_ns,
            mount_point: "/dev/shm".into(),
            dev: 9,
        };
        s.ns_tmpfs = vec![tmpfs(None), tmpfs(Some(4001)), tmpfs(Some(4003))];
        s.pod_cgroups = [1, 3]
            .map(|n| crate::model::CgroupMem {
                path: pod(n),
                version: crate::model::CgroupVersion::V2,
                shmem_bytes: Some(1),
            })
            .to_vec();
        let view = CallerView {
            visible: [1, 2].into(),
            readable: [1].into(),
            named: HashSet::new(),
            openable: HashSet::new(),
        };
        let r = redact(s, &view);
        assert_eq!(r.ns_tmpfs, [tmpfs(None), tmpfs(Some(4001))]);
        assert_eq!(
            r.pod_cgroups
                .iter()
                .map(|c| c.path.clone())
                .collect::<Vec<_>>(),
            [pod(1)]
        );
    }

    #[test]
    fn unnamed_objects_keep_their_sizes() {
        let view = CallerView {
            visible: [1, 2, 3].into(),
            ..CallerView::default()
        };
        let r = redact(snap(), &view);
        assert_eq!(r.notes.hidden, 0);
        assert_eq!(r.objects.len(), 3);
        assert!(
            matches!(&r.objects[0].detail, ObjectDetail::Memfd { name } if name == HIDDEN_NAME)
        );
        assert_eq!(
            r.objects[1].file().map(|f| f.path.as_path()),
            Some(Path::new("/dev/shm/(hidden)"))
        );
        assert_eq!(r.objects[1].resident_bytes, 4096);
        let text = format!("{:?}", r.objects);
        assert!(
            !text.contains("secret") && !text.contains("private"),
            "{text}"
        );
    }
}

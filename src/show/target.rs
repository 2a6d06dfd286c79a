//! What `shmwho show` was asked about: the argument parsed, then found in a snapshot.
//!
//! Spellings are the objects view's (`render::object_id`, `render::object_name`):
//! - `pid:N` a process; `inode:N` or `inode:MAJ:MIN:N` an object by inode;
//! - `sysv:ID` a SysV segment by shmid, `0xKEY` by key;
//! - `memfd:NAME` a memfd by name; `/path` a file on a tmpfs (or /dev/shm);
//! - `PID:ADDRESS` (hex, `0x` optional) the object mapped at that address in that process;
//! - a bare number: the process with that pid, or else the object with that inode; when it is
//!   both, shmwho refuses and asks for `pid:N` or `inode:N`.

use crate::model::{Object, ObjectDetail, ObjectId, ObjectKind, Pid, Snapshot, SysvKey, Via};
use std::path::PathBuf;

/// The argument, parsed; nothing looked up yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// `pid:N`.
    Pid(Pid),
    /// `inode:N` or `inode:MAJ:MIN:N`.
    Inode {
        /// The device, when given.
        dev: Option<(u32, u32)>,
        /// The inode.
        ino: u64,
    },
    /// A bare number: pid or inode.
    Number(u64),
    /// `sysv:ID`.
    Shmid(i32),
    /// `0xKEY`: a SysV key.
    Key(i32),
    /// `memfd:NAME`.
    Memfd(String),
    /// A path on a tmpfs.
    Path(PathBuf),
    /// `PID:ADDRESS`: what a process maps at an address.
    Mapping {
        /// The process.
        pid: Pid,
        /// An address inside the mapping.
        addr: u64,
    },
}

/// What the argument names in the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// A process.
    Process(Pid),
    /// Index in `snapshot.objects`.
    Object(usize),
}

fn hex(s: &str) -> Option<u64> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Parses the argument. Errors are one line saying what is accepted.
pub fn parse(arg: &str) -> Result<Spec, String> {
    let bad = || {
        format!(
            "cannot read '{arg}' as an object or a process: give an inode, sysv:SHMID, 0xKEY, memfd:NAME, a /path on a tmpfs, PID:ADDRESS, or pid:PID"
        )
    };
    if let Some(rest) = arg.strip_prefix("pid:") {
        return rest.parse().map(Spec::Pid).map_err(|_| bad());
    }
    if let Some(rest) = arg.strip_prefix("inode:") {
        let parts: Vec<&str> = rest.split(':').collect();
        return match parts.as_slice() {
            [ino] => ino
                .parse()
                .map(|ino| Spec::Inode { dev: None, ino })
                .map_err(|_| bad()),
            [maj, min, ino] => match (maj.parse(), min.parse(), ino.parse()) {
                (Ok(maj), Ok(min), Ok(ino)) => Ok(Spec::Inode {
                    dev: Some((maj, min)),
                    ino,
                }),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        };
    }
    if let Some(rest) = arg.strip_prefix("sysv:") {
        return rest.parse().map(Spec::Shmid).map_err(|_| bad());
    }
    if let Some(rest) = arg.strip_prefix("memfd:") {
        return Ok(Spec::Memfd(rest.to_string()));
    }
    if arg.starts_with('/') {
        return Ok(Spec::Path(PathBuf::from(arg)));
    }
    if arg.starts_with("0x") || arg.starts_with("0X") {
        // Keys print as 32-bit hex; the kernel's key is a signed int.
        return hex(arg)
            .and_then(|k| u32::try_from(k).ok())
            .map(|k| Spec::Key(k as i32))
            .ok_or_else(bad);
    }
    if let Some((pid, addr)) = arg.split_once(':') {
        return match (pid.parse(), hex(addr)) {
            (Ok(pid), Some(addr)) => Ok(Spec::Mapping { pid, addr }),
            _ => Err(bad()),
        };
    }
    arg.parse().map(Spec::Number).map_err(|_| bad())
}

/// An unambiguous spelling of an object, for error messages.
pub fn spelling(o: &Object) -> String {
    match o.id {
        ObjectId::Inode { dev, ino } => format!("inode:{}:{ino}", crate::report::dev_text(dev)),
        ObjectId::Sysv { shmid, .. } => {
            // Another IPC namespace's segment is reached through a mapping of it.
            let mapping = o.holders.iter().find_map(|h| match h.via {
                Via::Map { start, .. } if o.foreign_ns.is_some() => {
                    Some(format!("{}:{start:x}", h.pid))
                }
                _ => None,
            });
            mapping.unwrap_or_else(|| format!("sysv:{shmid}"))
        }
    }
}

fn one(snap: &Snapshot, arg: &str, found: Vec<usize>) -> Result<Found, String> {
    match found.as_slice() {
        [] => Err(format!(
            "no shared-memory object '{arg}' (shmwho objects lists them; it may be gone)"
        )),
        [i] => Ok(Found::Object(*i)),
        many => {
            let names: Vec<String> = many.iter().map(|&i| spelling(&snap.objects[i])).collect();
            Err(format!(
                "'{arg}' names {} objects: say which with one of {}",
                many.len(),
                names.join(", ")
            ))
        }
    }
}

/// Prefers objects of shmwho's own namespace when the same name exists in others.
fn own_first(snap: &Snapshot, found: Vec<usize>) -> Vec<usize> {
    let own: Vec<usize> = found
        .iter()
        .copied()
        .filter(|&i| snap.objects[i].foreign_ns.is_none())
        .collect();
    if own.is_empty() {
        found
    } else {
        own
    }
}

/// Finds what `spec` names. `path_id` stats a path (dev, inode) without touching its contents.
pub fn resolve(
    snap: &Snapshot,
    arg: &str,
    spec: &Spec,
    path_id: &dyn Fn(&std::path::Path) -> Option<(u64, u64)>,
) -> Result<Found, String> {
    let objs = &snap.objects;
    let select = |pred: &dyn Fn(&Object) -> bool| -> Vec<usize> {
        (0..objs.len()).filter(|&i| pred(&objs[i])).collect()
    };
    let by_inode = |ino: u64, dev: Option<(u32, u32)>| {
        select(&|o| {
            o.kind() != ObjectKind::Sysv
                && o.inode == ino
                && dev.is_none_or(|(maj, min)| o.dev == Some(rustix::fs::makedev(maj, min)))
        })
    };
    match spec {
        Spec::Pid(pid) => snap
            .process(*pid)
            .map(|p| Found::Process(p.pid))
            .ok_or_else(|| {
                format!("no process with pid {pid} (it does not exist, or is a kernel thread)")
            }),
        Spec::Number(n) => {
            let objects = by_inode(*n, None);
            let pid = Pid::try_from(*n).ok().and_then(|p| snap.process(p));
            match (pid, objects.is_empty()) {
                (Some(p), true) => Ok(Found::Process(p.pid)),
                (None, true) => Err(format!(
                    "no process and no shared-memory object numbered {n} (shmwho objects lists the objects)"
                )),
                (None, false) => one(snap, arg, objects),
                (Some(_), false) => Err(format!(
                    "{n} is both a process and the inode of a shared-memory object: say pid:{n} or inode:{n}"
                )),
            }
        }
        Spec::Inode { dev, ino } => one(snap, arg, by_inode(*ino, *dev)),
        Spec::Shmid(id) => {
            let found = select(&|o| matches!(o.id, ObjectId::Sysv { shmid, .. } if shmid == *id));
            one(snap, arg, own_first(snap, found))
        }
        Spec::Key(key) => {
            if *key == 0 {
                return Err(
                    "key 0x00000000 is IPC_PRIVATE, shared by every private segment: say sysv:SHMID"
                        .to_string(),
                );
            }
            let found = select(&|o| o.sysv_key() == Some(SysvKey(*key)));
            one(snap, arg, own_first(snap, found))
        }
        Spec::Memfd(name) => one(
            snap,
            arg,
            select(&|o| matches!(&o.detail, ObjectDetail::Memfd { name: n } if n == name)),
        ),
        Spec::Path(path) => {
            let by_id =
                path_id(path).map(|(dev, ino)| select(&|o| o.id == ObjectId::Inode { dev, ino }));
            match by_id {
                Some(found) if !found.is_empty() => one(snap, arg, found),
                // Deleted files and other namespaces' files: by the path shown.
                _ => {
                    let shown = |o: &Object| o.file().is_some_and(|f| f.path == *path);
                    one(snap, arg, own_first(snap, select(&shown)))
                }
            }
        }
        Spec::Mapping { pid, addr } => {
            if snap.process(*pid).is_none() {
                return Err(format!("no process with pid {pid}"));
            }
            let found = select(&|o| {
                o.holders.iter().any(|h| {
                    h.pid == *pid
                        && matches!(h.via, Via::Map { start, end, .. } if (start..end).contains(addr))
                })
            });
            if found.is_empty() {
                return Err(format!(
                    "process {pid} maps no shared-memory object at address {addr:x}"
                ));
            }
            one(snap, arg, found)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::{object, process, snapshot};
    use crate::model::SysvSegment;

    #[test]
    fn parses_every_spelling() {
        assert_eq!(parse("pid:12"), Ok(Spec::Pid(12)));
        assert_eq!(parse("inode:7"), Ok(Spec::Inode { dev: None, ino: 7 }));
        assert_eq!(
            parse("inode:0:1:7"),
            Ok(Spec::Inode {
                dev: Some((0, 1)),
                ino: 7
            })
        );
        assert_eq!(parse("sysv:3"), Ok(Spec::Shmid(3)));
        assert_eq!(parse("0xdeadbeef"), Ok(Spec::Key(0xdeadbeef_u32 as i32)));
        assert_eq!(parse("memfd:a:b"), Ok(Spec::Memfd("a:b".into())));
        assert_eq!(parse("/dev/shm/x"), Ok(Spec::Path("/dev/shm/x".into())));
        assert_eq!(
            parse("123:7f00aa001000"),
            Ok(Spec::Mapping {
                pid: 123,
                addr: 0x7f00aa001000
            })
        );
        assert_eq!(
            parse("123:0x1000"),
            Ok(Spec::Mapping {
                pid: 123,
                addr: 0x1000
            })
        );
        assert_eq!(parse("2707"), Ok(Spec::Number(2707)));
        for bad in [
            "",
            "pid:x",
            "inode:1:2",
            "sysv:",
            "12:zz",
            "0x",
            "0x1ffffffff",
            "abc",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    fn snap() -> Snapshot {
        let mut o1 = object(100, 4096, &[10]);
        o1.detail = ObjectDetail::Memfd { name: "buf".into() };
        let mut o2 = object(10, 4096, &[11]); // inode 10 = pid 10
        o2.dev = Some(rustix::fs::makedev(0, 1));
        o2.id = ObjectId::Inode {
            dev: rustix::fs::makedev(0, 1),
            ino: 10,
        };
        let mut o3 = object(10, 4096, &[]); // inode 10 on another device
        o3.dev = Some(rustix::fs::makedev(0, 30));
        o3.id = ObjectId::Inode {
            dev: rustix::fs::makedev(0, 30),
            ino: 10,
        };
        let mut s = object(5, 4096, &[11]);
        // Elsewhere in pid 11's address space than o2.
        s.holders[0].via = Via::Map {
            start: 0x10_0000,
            end: 0x10_1000,
            offset: 0,
            shared: true,
            pss_bytes: None,
            rss_bytes: None,
        };
        s.id = ObjectId::Sysv {
            ipc_ns: 1,
            shmid: 5,
        };
        s.detail = ObjectDetail::sysv(SysvSegment {
            key: SysvKey(0x1234),
            shmid: 5,
            perms: 0o600,
            size_bytes: 4096,
            cpid: 11,
            lpid: 11,
            nattch: 1,
            uid: 0,
            cuid: 0,
            ctime: 0,
            rss_bytes: Some(4096),
            swap_bytes: Some(0),
        });
        snapshot(vec![process(10, 1), process(11, 2)], vec![o1, o2, o3, s])
    }

    fn find(arg: &str) -> Result<Found, String> {
        let s = snap();
        let spec = parse(arg)?;
        resolve(&s, arg, &spec, &|_| None)
    }

    #[test]
    fn resolves_and_refuses_ambiguity() {
        assert_eq!(find("memfd:buf"), Ok(Found::Object(0)));
        assert_eq!(find("100"), Ok(Found::Object(0)));
        assert_eq!(find("11"), Ok(Found::Process(11)));
        assert_eq!(find("pid:10"), Ok(Found::Process(10)));
        assert_eq!(find("sysv:5"), Ok(Found::Object(3)));
        assert_eq!(find("0x00001234"), Ok(Found::Object(3)));
        assert_eq!(find("inode:0:30:10"), Ok(Found::Object(2)));
        // 10 is a pid and an inode.
        let e = find("10").unwrap_err();
        assert!(e.contains("pid:10") && e.contains("inode:10"), "{e}");
        // inode 10 exists on two devices.
        let e = find("inode:10").unwrap_err();
        assert!(
            e.contains("inode:0:1:10") && e.contains("inode:0:30:10"),
            "{e}"
        );
        // The holder's mapping covers 0x1000..0x1000+8192.
        assert_eq!(find("11:0x1fff"), Ok(Found::Object(1)));
        assert_eq!(find("11:100fff"), Ok(Found::Object(3)));
        assert!(find("11:0x9000").unwrap_err().contains("maps no"));
        assert!(find("memfd:nope")
            .unwrap_err()
            .contains("no shared-memory object"));
        assert!(find("pid:99").is_err());
        assert!(find("99").unwrap_err().contains("no process and no"));
        assert!(find("0x0").is_err());
    }
}

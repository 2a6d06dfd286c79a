//! Kind, identity and names of the object behind a mapping or an fd.

use super::super::maps;
use super::super::Context;
use crate::model::{
    Accuracy, EstimateReason, FileDetail, Object, ObjectDetail, ObjectId, Process, SysvKey,
};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// An object not measured yet: `build` sets its figures and accuracy, or drops it.
pub(super) fn blank(id: ObjectId, detail: ObjectDetail) -> Object {
    Object {
        id,
        detail,
        dev: None,
        inode: 0,
        size_bytes: 0,
        resident_bytes: 0,
        swap_bytes: 0,
        accuracy: Accuracy::Estimate(EstimateReason::MapFilesDenied),
        holders: Vec::new(),
        foreign_ns: None,
    }
}

pub(super) fn sysv_detail(key: Option<SysvKey>) -> ObjectDetail {
    ObjectDetail::Sysv {
        key,
        segment: None,
        hugetlb: false,
    }
}

/// Kind, identity and names of the object behind a mapping or fd of process `p`.
pub(super) fn describe(
    ctx: &Context,
    p: &Process,
    dev: u64,
    ino: u64,
    path: &[u8],
) -> (ObjectId, Object) {
    let inode_id = ObjectId::Inode { dev, ino };
    if dev == ctx.shmem_dev {
        if let Some(rest) = path.strip_prefix(b"/SYSV") {
            let ipc_ns = p.ipc_ns.or(ctx.own_ipc_ns).unwrap_or(0);
            let id = ObjectId::Sysv {
                ipc_ns,
                shmid: ino as i32,
            };
            // Segments of other namespaces are not in our /proc/sysvipc/shm; keep the key.
            let key = rest.get(..8).and_then(SysvKey::from_map_name);
            let obj = Object {
                dev: Some(dev),
                inode: ino,
                foreign_ns: (p.ipc_ns.is_some() && p.ipc_ns != ctx.own_ipc_ns).then_some(ipc_ns),
                ..blank(id, sysv_detail(key))
            };
            return (id, obj);
        }
        if let Some(rest) = path.strip_prefix(b"/memfd:") {
            let (name, _) = maps::strip_deleted(rest);
            let obj = Object {
                dev: Some(dev),
                inode: ino,
                ..blank(
                    inode_id,
                    ObjectDetail::Memfd {
                        name: String::from_utf8_lossy(name).into_owned(),
                    },
                )
            };
            return (inode_id, obj);
        }
        let obj = Object {
            dev: Some(dev),
            inode: ino,
            ..blank(inode_id, ObjectDetail::AnonShared)
        };
        return (inode_id, obj);
    }
    let (mount_point, ns) = ctx
        .tmpfs
        .get(&dev)
        .map(|(m, ns)| (Some(m.mount_point.clone()), *ns))
        .unwrap_or((None, None));
    let posix = mount_point.as_deref() == Some(ctx.paths.dev_shm.as_path());
    let (p, deleted) = maps::strip_deleted(path);
    let file = FileDetail {
        path: PathBuf::from(OsString::from_vec(p.to_vec())),
        deleted,
        mount_point,
    };
    let obj = Object {
        dev: Some(dev),
        inode: ino,
        foreign_ns: ns,
        ..blank(
            inode_id,
            if posix {
                ObjectDetail::PosixShm(file)
            } else {
                ObjectDetail::Tmpfs(file)
            },
        )
    };
    (inode_id, obj)
}

//! Per Kubernetes pod: the shared memory shmwho charges to its processes next to what the
//! kernel charges to the pod's cgroup (`memory.stat` shmem of the whole pod), and its
//! memory-backed volumes (the tmpfs at `/dev/shm`, emptyDirs with `medium: Memory`) used
//! against their size limits: a full `/dev/shm` is what PostgreSQL reports as "could not resize
//! shared memory segment".
//!
//! A pod's volumes are found in its containers' mount namespaces (the tmpfs mounted at
//! `/dev/shm`) and in any namespace read at kubelet's path for the pod's emptyDirs
//! (`…/pods/<UID>/volumes/kubernetes.io~empty-dir/<name>`). shmwho's own mount namespace never
//! counts as a container's: a process there sees the host's `/dev/shm`.

use super::{account, Accounted, Policy};
use crate::collect::container;
use crate::model::{NsTmpfs, Snapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where kubelet mounts an emptyDir of the pod, below its root dir.
const EMPTY_DIR: &str = "volumes/kubernetes.io~empty-dir";

/// One pod of the listed processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRow {
    /// The pod's UID.
    pub pod_uid: String,
    /// Its cgroup (the parent of its containers'), as `/proc/PID/cgroup` prints it.
    pub cgroup: Option<String>,
    /// Listed processes in it.
    pub processes: u32,
    /// Shared bytes charged to its processes under the accounted policy.
    pub charged_bytes: u64,
    /// Charged under the owner policy.
    pub owner_bytes: u64,
    /// `memory.stat` shmem of the pod's cgroup and its children; None when unreadable.
    pub kernel_shmem_bytes: Option<u64>,
    /// Its memory-backed volumes, by mount point.
    pub volumes: Vec<PodVolume>,
}

/// A tmpfs a pod's containers see: `/dev/shm` or an emptyDir with `medium: Memory`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodVolume {
    /// Where the containers mount it (kubelet's path when no container namespace was read).
    pub mount_point: PathBuf,
    /// Its device.
    pub dev: u64,
    /// The emptyDir's name, when kubelet's mount of it was seen.
    pub empty_dir: Option<String>,
    /// Bytes in use (statfs): resident plus swapped, files held or not.
    pub used_bytes: Option<u64>,
    /// Its size limit (the emptyDir's sizeLimit, or the runtime's /dev/shm size).
    pub size_bytes: Option<u64>,
}

impl PodRow {
    /// Kernel minus shmwho's owner charge: positive when the kernel charges the pod more.
    pub fn kernel_minus_owner(&self) -> Option<i64> {
        self.kernel_shmem_bytes
            .map(|k| crate::size::signed_delta(self.owner_bytes, k))
    }

    /// The volume at `/dev/shm` with the least room left, when the containers mount one.
    pub fn dev_shm(&self) -> Option<&PodVolume> {
        self.volumes
            .iter()
            .filter(|v| v.mount_point == Path::new("/dev/shm"))
            .min_by_key(|v| v.free_bytes().unwrap_or(u64::MAX))
    }
}

impl PodVolume {
    /// Room left before writes fail with ENOSPC.
    pub fn free_bytes(&self) -> Option<u64> {
        Some(self.size_bytes?.saturating_sub(self.used_bytes?))
    }
}

/// The emptyDir named by a kubelet mount point of pod `uid`, if it is one.
fn empty_dir_name(mount_point: &Path, uid: &str) -> Option<String> {
    let s = mount_point.to_str()?;
    let rest = &s[s.find(&format!("/pods/{uid}/"))? + uid.len() + 7..];
    let name = rest.strip_prefix(EMPTY_DIR)?.strip_prefix('/')?;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

/// Every pod of the listed processes, largest kernel shmem first (then charged bytes, UID).
pub fn by_pod(acc: &Accounted) -> Vec<PodRow> {
    let snap: &Snapshot = acc.snapshot;
    let mut pods: BTreeMap<String, (PodRow, BTreeSet<u64>)> = BTreeMap::new();
    let mut members = Vec::new();
    for p in &snap.processes {
        let Some(cg) = p.cgroup.as_deref() else {
            continue;
        };
        let Some(uid) = container::parse(cg).pod_uid else {
            continue;
        };
        let (row, namespaces) = pods.entry(uid.clone()).or_insert_with(|| {
            let cgroup = container::pod_cgroup(cg).map(str::to_string);
            let kernel = cgroup.as_deref().and_then(|c| {
                let i = snap
                    .pod_cgroups
                    .binary_search_by(|m| m.path.as_str().cmp(c))
                    .ok()?;
                snap.pod_cgroups[i].shmem_bytes
            });
            let row = PodRow {
                pod_uid: uid.clone(),
                cgroup,
                processes: 0,
                charged_bytes: 0,
                owner_bytes: 0,
                kernel_shmem_bytes: kernel,
                volumes: Vec::new(),
            };
            (row, BTreeSet::new())
        });
        row.processes += 1;
        row.charged_bytes = row.charged_bytes.saturating_add(acc.charged(p.pid));
        if let Some(ns) = p.mnt_ns {
            namespaces.insert(ns);
        }
        members.push((uid, p.pid));
    }
    if pods.is_empty() {
        return Vec::new();
    }
    // Accounted again only on a host that runs pods.
    let owner = (acc.policy != Policy::Owner).then(|| account(snap, Policy::Owner));
    let owner = owner.as_ref().unwrap_or(acc);
    for (uid, pid) in members {
        if let Some((row, _)) = pods.get_mut(&uid) {
            row.owner_bytes = row.owner_bytes.saturating_add(owner.charged(pid));
        }
    }
    let mut rows: Vec<PodRow> = pods
        .into_values()
        .map(|(mut row, namespaces)| {
            row.volumes = volumes(snap, &row.pod_uid, &namespaces);
            row
        })
        .collect();
    rows.sort_by(|a, b| {
        b.kernel_shmem_bytes
            .unwrap_or(0)
            .cmp(&a.kernel_shmem_bytes.unwrap_or(0))
            .then(b.charged_bytes.cmp(&a.charged_bytes))
            .then(a.pod_uid.cmp(&b.pod_uid))
    });
    rows
}

/// The pod's memory-backed volumes, one per device: the container's name for it when a
/// container namespace shows it, else kubelet's.
fn volumes(snap: &Snapshot, uid: &str, namespaces: &BTreeSet<u64>) -> Vec<PodVolume> {
    let in_pod = |m: &&NsTmpfs| m.mnt_ns.is_some_and(|ns| namespaces.contains(&ns));
    // emptyDirs by device, from kubelet's mounts in any namespace read.
    let empty_dirs: BTreeMap<u64, (String, &NsTmpfs)> = snap
        .ns_tmpfs
        .iter()
        .filter_map(|m| Some((m.dev, (empty_dir_name(&m.mount_point, uid)?, m))))
        .collect();
    let mut by_dev: BTreeMap<u64, PodVolume> = BTreeMap::new();
    let seen = snap
        .ns_tmpfs
        .iter()
        .filter(in_pod)
        .filter(|m| m.mount_point == Path::new("/dev/shm") || empty_dirs.contains_key(&m.dev));
    let kubelet = empty_dirs.values().map(|(_, m)| *m);
    for m in seen.chain(kubelet) {
        by_dev.entry(m.dev).or_insert_with(|| {
            let fig = snap.mounts.iter().find(|t| t.dev == m.dev);
            PodVolume {
                mount_point: m.mount_point.clone(),
                dev: m.dev,
                empty_dir: empty_dirs.get(&m.dev).map(|(n, _)| n.clone()),
                used_bytes: fig.and_then(|t| t.used_bytes),
                size_bytes: fig.and_then(|t| t.size_bytes),
            }
        });
    }
    let mut out: Vec<PodVolume> = by_dev.into_values().collect();
    out.sort_by(|a, b| (&a.mount_point, a.dev).cmp(&(&b.mount_point, b.dev)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::{object, process, snapshot};
    use crate::model::{CgroupMem, CgroupVersion, TmpfsMount};

    const UID: &str = "0b3c2d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
    const ID: &str = "4f0d7bd5e0a14c6d1f6e9e2b3c8a7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c";

    fn tmpfs(dev: u64, used: u64, size: u64) -> TmpfsMount {
        TmpfsMount {
            mount_point: format!("/somewhere/{dev}").into(),
            dev,
            foreign_ns: None,
            used_bytes: Some(used),
            size_bytes: Some(size),
            hidden: false,
            container: None,
        }
    }

    fn ns(mnt_ns: Option<u64>, mount_point: &str, dev: u64) -> NsTmpfs {
        NsTmpfs {
            mnt_ns,
            mount_point: mount_point.into(),
            dev,
        }
    }

    #[test]
    fn pods_charges_kernel_and_volumes() {
        let pod_cg = format!("/kubepods/burstable/pod{UID}");
        let mut p10 = process(10, 1);
        p10.cgroup = Some(format!("{pod_cg}/{ID}"));
        p10.mnt_ns = Some(4001);
        let mut p11 = process(11, 2);
        p11.cgroup = Some(format!("{pod_cg}/{}", ID.replace('4', "5")));
        p11.mnt_ns = Some(4002);
        let mut p12 = process(12, 3);
        p12.cgroup = Some("/system.slice/postgresql@15-main.service".into());
        p12.mnt_ns = Some(4003);
        let mut snap = snapshot(
            vec![p10, p11, p12],
            vec![object(1, 1000, &[10, 12]), object(2, 300, &[11])],
        );
        snap.pod_cgroups = vec![CgroupMem {
            path: pod_cg.clone(),
            version: CgroupVersion::V1,
            shmem_bytes: Some(1500),
        }];
        let kubelet = format!("/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~empty-dir/dshm");
        snap.mounts = vec![
            tmpfs(50, 4096, 65536),
            tmpfs(51, 8192, 1 << 20),
            tmpfs(52, 1, 2),
        ];
        snap.ns_tmpfs = vec![
            ns(None, "/dev/shm", 52), // ours: the host's, never a pod's
            ns(None, &kubelet, 51),
            ns(Some(4001), "/dev", 53), // the runtime's /dev: not a volume
            ns(Some(4001), "/dev/shm", 50),
            ns(Some(4002), "/dev/shm", 51), // the emptyDir, mounted at /dev/shm
            ns(Some(4003), "/dev/shm", 52),
        ];
        let acc = account(&snap, Policy::Split);
        let rows = by_pod(&acc);
        assert_eq!(rows.len(), 1, "one pod: p12 is a systemd service");
        let pod = &rows[0];
        assert_eq!(pod.pod_uid, UID);
        assert_eq!(pod.cgroup.as_deref(), Some(pod_cg.as_str()));
        assert_eq!(pod.processes, 2);
        assert_eq!(pod.charged_bytes, 500 + 300, "split with p12");
        assert_eq!(pod.owner_bytes, 1300, "p10 started first and owns object 1");
        assert_eq!(pod.kernel_shmem_bytes, Some(1500));
        assert_eq!(pod.kernel_minus_owner(), Some(200));
        let v: Vec<_> = pod
            .volumes
            .iter()
            .map(|v| {
                (
                    v.mount_point.to_str().unwrap(),
                    v.dev,
                    v.empty_dir.as_deref(),
                    v.used_bytes,
                    v.size_bytes,
                )
            })
            .collect();
        assert_eq!(
            v,
            [
                ("/dev/shm", 50, None, Some(4096), Some(65536)),
                ("/dev/shm", 51, Some("dshm"), Some(8192), Some(1 << 20)),
            ]
        );
        assert_eq!(pod.dev_shm().unwrap().dev, 50, "the one with least room");
        assert_eq!(pod.dev_shm().unwrap().free_bytes(), Some(65536 - 4096));
    }

    #[test]
    fn kubelet_paths() {
        let p = |s: &str| PathBuf::from(s);
        let base = format!("/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~empty-dir");
        assert_eq!(
            empty_dir_name(&p(&format!("{base}/cache")), UID).as_deref(),
            Some("cache")
        );
        assert_eq!(empty_dir_name(&p(&format!("{base}/a/b")), UID), None);
        assert_eq!(empty_dir_name(&p(&format!("{base}/")), UID), None);
        assert_eq!(
            empty_dir_name(
                &p(&format!(
                    "/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~projected/token"
                )),
                UID
            ),
            None
        );
        assert_eq!(
            empty_dir_name(&p(&format!("{base}/x")), &UID.replace('0', "1")),
            None
        );
    }
}

//! Memory cgroups: which one each process is in (`/proc/PID/cgroup`) and how much shmem the
//! kernel charges to it (`memory.stat`). cgroup v2, and v1's memory controller as on hybrid
//! hosts, where the memory controller stays on v1 while systemd also mounts a v2 tree.
//!
//! The two files' parsers are in [`super::parse::cgroup`]; [`Hierarchies::read_shmem`] is the
//! only I/O.

pub use super::parse::cgroup::{parse_process, parse_stat_shmem, parse_stat_subtree_shmem};
use super::parse::mountinfo;
use crate::model::{CgroupMem, CgroupVersion};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// A mounted cgroup hierarchy: where it is mounted and which cgroup its root shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mounted {
    /// Where it is mounted, in our mount namespace.
    pub mount_point: PathBuf,
    /// The cgroup at the mount point (`/` unless a subtree is bind-mounted, as in containers).
    pub root: String,
}

/// Where the memory controller can be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hierarchies {
    /// A v1 hierarchy with the `memory` controller.
    pub v1_memory: Option<Mounted>,
    /// The v2 (unified) hierarchy.
    pub v2: Option<Mounted>,
}

impl Hierarchies {
    /// The mount points as reached from here (under `--host-root`).
    pub fn reached(mut self, paths: &super::HostPaths) -> Hierarchies {
        for m in [&mut self.v1_memory, &mut self.v2].into_iter().flatten() {
            m.mount_point = paths.reach(&m.mount_point);
        }
        self
    }

    /// The hierarchy that accounts memory: v1's memory controller when it is mounted (a v1
    /// controller cannot be enabled on v2 at the same time), else v2.
    pub fn memory_version(&self) -> Option<CgroupVersion> {
        if self.v1_memory.is_some() {
            Some(CgroupVersion::V1)
        } else if self.v2.is_some() {
            Some(CgroupVersion::V2)
        } else {
            None
        }
    }

    /// The memory cgroup in a `/proc/PID/cgroup` text.
    pub fn process_cgroup(&self, text: &[u8]) -> Option<String> {
        parse_process(text, self.memory_version()?)
    }

    /// `memory.stat` of a cgroup path as `/proc/PID/cgroup` prints it.
    pub fn stat_path(&self, cgroup: &str) -> Option<PathBuf> {
        let m = match self.memory_version()? {
            CgroupVersion::V1 => self.v1_memory.as_ref()?,
            CgroupVersion::V2 => self.v2.as_ref()?,
        };
        let rel = if m.root == "/" {
            // trim all leading slashes: joining an absolute path would replace the mount point.
            cgroup.strip_prefix('/')?.trim_start_matches('/')
        } else {
            let rest = cgroup.strip_prefix(m.root.as_str())?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None; // a sibling whose name merely starts like the root
            }
            rest.trim_start_matches('/')
        };
        // `..` appears for cgroups outside our cgroup namespace: not reachable through the mount.
        if rel.split('/').any(|c| c == "..") {
            return None;
        }
        Some(m.mount_point.join(rel).join("memory.stat"))
    }

    /// The kernel's shmem figure for each distinct cgroup, sorted by path. O(1) per cgroup: one
    /// small file.
    pub fn read_shmem<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> Vec<CgroupMem> {
        self.read(paths, parse_stat_shmem)
    }

    /// As [`Hierarchies::read_shmem`], with the shmem of each cgroup's whole subtree.
    pub fn read_subtree_shmem<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Vec<CgroupMem> {
        match self.memory_version() {
            Some(v) => self.read(paths, |t| parse_stat_subtree_shmem(t, v)),
            None => Vec::new(),
        }
    }

    fn read<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
        parse: impl Fn(&[u8]) -> Option<u64>,
    ) -> Vec<CgroupMem> {
        let Some(version) = self.memory_version() else {
            return Vec::new();
        };
        let distinct: BTreeSet<&str> = paths.into_iter().collect();
        distinct
            .into_iter()
            .map(|path| CgroupMem {
                path: path.to_string(),
                version,
                shmem_bytes: self
                    .stat_path(path)
                    .and_then(|p| std::fs::read(p).ok())
                    .and_then(|t| parse(&t)),
            })
            .collect()
    }
}

/// cgroup mounts in a mountinfo text.
pub fn parse_mounts(mountinfo: &[u8]) -> Hierarchies {
    let mut h = Hierarchies::default();
    for m in mountinfo::parse(mountinfo) {
        let mounted = || Mounted {
            mount_point: m.mount_point.clone(),
            root: String::from_utf8_lossy(&m.root).into_owned(),
        };
        match m.fs_type.as_str() {
            "cgroup" if m.has_option("memory") => {
                h.v1_memory.get_or_insert_with(mounted);
            }
            "cgroup2" => {
                h.v2.get_or_insert_with(mounted);
            }
            _ => {}
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .expect("fixture")
    }

    #[test]
    fn hybrid_host_uses_the_v1_memory_line() {
        let h = parse_mounts(&fixture("mountinfo_cgroup_hybrid.txt"));
        assert_eq!(
            h.v1_memory,
            Some(Mounted {
                mount_point: "/sys/fs/cgroup/memory".into(),
                root: "/".into()
            })
        );
        assert_eq!(
            h.v2.as_ref().unwrap().mount_point,
            Path::new("/sys/fs/cgroup/unified")
        );
        assert_eq!(h.memory_version(), Some(CgroupVersion::V1));
        let cg = h.process_cgroup(&fixture("cgroup_hybrid.txt"));
        assert_eq!(cg.as_deref(), Some("/system.slice/php8.2-fpm.service"));
        assert_eq!(
            h.stat_path(cg.as_deref().unwrap()),
            Some(PathBuf::from(
                "/sys/fs/cgroup/memory/system.slice/php8.2-fpm.service/memory.stat"
            ))
        );
        assert_eq!(
            h.stat_path("/"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/memory.stat"))
        );
    }

    #[test]
    fn v2_host() {
        let h = parse_mounts(b"30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n");
        assert_eq!(h.memory_version(), Some(CgroupVersion::V2));
        let cg = h.process_cgroup(&fixture("cgroup_v2.txt")).unwrap();
        assert_eq!(cg, "/system.slice/postgresql@15-main.service");
        assert_eq!(
            h.stat_path(&cg).unwrap(),
            Path::new("/sys/fs/cgroup/system.slice/postgresql@15-main.service/memory.stat")
        );
        // A v2 host ignores v1 lines (a named v1 hierarchy such as name=systemd can coexist).
        assert_eq!(
            parse_process(b"1:name=systemd:/x\n0::/y\n", CgroupVersion::V2).as_deref(),
            Some("/y")
        );
    }

    #[test]
    fn container_view_and_hostile_paths() {
        // Inside a container the mount shows a subtree; paths outside it are unreachable.
        let h = parse_mounts(
            b"900 800 0:40 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
        );
        assert_eq!(
            h.stat_path("/docker/abc/sub").unwrap(),
            Path::new("/sys/fs/cgroup/memory/sub/memory.stat")
        );
        assert_eq!(
            h.stat_path("/docker/abc").unwrap(),
            Path::new("/sys/fs/cgroup/memory/memory.stat")
        );
        assert_eq!(h.stat_path("/docker/abcdef"), None);
        assert_eq!(h.stat_path("/../other"), None);
        // Colons in the path, memory co-mounted with another controller.
        assert_eq!(
            parse_process(b"4:cpu,memory:/a:b:c\n", CgroupVersion::V1).as_deref(),
            Some("/a:b:c")
        );
        assert_eq!(parse_process(b"", CgroupVersion::V1), None);
        assert_eq!(
            parse_process(b"garbage\n4:memory\n", CgroupVersion::V1),
            None
        );
        // A mount point with a space is escaped in mountinfo.
        let h = parse_mounts(b"1 2 0:3 / /mnt/cg\\040v1 rw - cgroup cgroup rw,memory\n");
        assert_eq!(h.v1_memory.unwrap().mount_point, Path::new("/mnt/cg v1"));
        assert_eq!(
            parse_mounts(b"short line - cgroup\n"),
            Hierarchies::default()
        );
    }
}

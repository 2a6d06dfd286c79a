//! `procs --by cgroup` against a memory cgroup the test creates: the child moved into it is
//! grouped there, and the cgroup's own memory.stat shmem is reported next to shmwho's charges,
//! to the byte, including where the two differ because the kernel charges the cgroup that first
//! touched a page.

mod common;

use common::*;
use shmwho::collect::cgroup::{parse_mounts, parse_process, parse_stat_subtree_shmem};
use shmwho::model::CgroupVersion;
use std::path::PathBuf;
use std::time::Duration;

/// A memory cgroup directory, removed on drop (after the children in it are gone: declare it
/// before them).
struct CgroupDir {
    path: PathBuf,
}

impl Drop for CgroupDir {
    fn drop(&mut self) {
        // A killed task leaves the cgroup asynchronously; rmdir says EBUSY until it has.
        for _ in 0..250 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove cgroup {}", self.path.display());
    }
}

/// A fresh memory cgroup below our own: (its directory, its path as /proc/PID/cgroup prints
/// it), or None (with the reason printed) where none can be made.
fn make_cgroup() -> Option<(CgroupDir, String)> {
    let h = parse_mounts(&std::fs::read("/proc/self/mountinfo").unwrap());
    let version = h.memory_version().or_else(|| {
        common::skip("no memory cgroup hierarchy is mounted");
        None
    })?;
    let own = parse_process(&std::fs::read("/proc/self/cgroup").unwrap(), version)?;
    let mount = match version {
        CgroupVersion::V1 => h.v1_memory.clone()?,
        CgroupVersion::V2 => h.v2.clone()?,
    };
    if mount.root != "/" {
        common::skip("the cgroup hierarchy is mounted from a subtree (a container)");
        return None;
    }
    let own_dir = mount.mount_point.join(own.trim_start_matches('/'));
    if version == CgroupVersion::V2 {
        // v2 gives a child cgroup memory accounting only when the parent delegates it.
        let ctl =
            std::fs::read_to_string(own_dir.join("cgroup.subtree_control")).unwrap_or_default();
        if !ctl.split_whitespace().any(|c| c == "memory") {
            common::skip(&format!(
                "cgroup v2 without the memory controller delegated below {own}"
            ));
            return None;
        }
    }
    let name = format!("shmwho-test-{}", unique());
    let path = own_dir.join(&name);
    if let Err(e) = std::fs::create_dir(&path) {
        common::skip(&format!("cannot create {}: {e}", path.display()));
        return None;
    }
    let cg_path = if own == "/" {
        format!("/{name}")
    } else {
        format!("{own}/{name}")
    };
    Some((CgroupDir { path }, cg_path))
}

fn shmem_of(dir: &CgroupDir) -> Option<u64> {
    shmwho::collect::cgroup::parse_stat_shmem(&std::fs::read(dir.path.join("memory.stat")).ok()?)
}

/// `path` as a NUL-terminated buffer a forked child can use without allocating.
fn c_path(path: &std::path::Path) -> [u8; 512] {
    let b = path.as_os_str().as_encoded_bytes();
    assert!(b.len() < 512);
    let mut buf = [0u8; 512];
    buf[..b.len()].copy_from_slice(b);
    buf
}

#[test]
fn procs_by_cgroup_against_memory_stat() {
    if !require_root("creates a memory cgroup") {
        return;
    }
    let Some((cg, cg_path)) = make_cgroup() else {
        return;
    };
    let pg = page();
    let (n, m) = (384u64, 128u64);
    // Written by the child after it joins the cgroup: charged to the cgroup.
    let mine = Memfd::new("shmwho-cgroup-child", n * pg);
    // Written by the test process before the child exists: charged to our own cgroup, although
    // the child, its only holder, owns it.
    let theirs = Memfd::new("shmwho-cgroup-parent", m * pg);
    pwrite_pages(theirs.raw(), 0, m);
    let procs = c_path(&cg.path.join("cgroup.procs"));
    let (fd1, fd2) = (mine.raw(), theirs.raw());
    let child = fork_child(&[], &[fd1, fd2], After::Pause, move || {
        // SAFETY: raw syscalls on a NUL-terminated buffer; "0" moves the writing process.
        unsafe {
            let f = libc::open(procs.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
            if f < 0 || libc::write(f, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(90);
            }
            libc::close(f);
        }
        child::pwrite_pages(fd1, 0, n, pg, 91);
        0
    });
    drop(mine);
    drop(theirs);

    // memory.stat is flushed lazily (every 2 s, or after enough updates): wait for it, up to
    // 10 s.
    let mut kernel = None;
    for _ in 0..100 {
        kernel = shmem_of(&cg);
        if kernel == Some(n * pg) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        kernel,
        Some(n * pg),
        "the kernel charged the child's writes to its cgroup"
    );

    let doc = json(&["procs", "--by", "cgroup", "--json"]);
    let p = process(&doc, child.pid()).expect("the child");
    assert_eq!(p["cgroup"], cg_path.as_str());
    assert_eq!(
        u(&p["shared_charged_bytes"]),
        (n + m) * pg,
        "it owns both memfds"
    );
    let group = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["cgroup"] == cg_path.as_str())
        .expect("a group for the cgroup");
    assert_eq!(group["processes"], 1);
    assert_eq!(u(&group["shared_charged_bytes"]), (n + m) * pg);
    let rec = doc["cgroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cgroup"] == cg_path.as_str())
        .expect("a reconciliation row for the cgroup");
    assert_eq!(u(&rec["owner_bytes"]), (n + m) * pg);
    assert_eq!(u(&rec["split_bytes"]), (n + m) * pg);
    assert_eq!(u(&rec["kernel_shmem_bytes"]), n * pg);
    assert_eq!(
        rec["kernel_minus_owner_bytes"],
        -((m * pg) as i64),
        "pages the test process touched first stay charged to its cgroup"
    );
    assert!(doc["cgroups_note"]
        .as_str()
        .unwrap()
        .contains("first touched"));

    let out = run(&["procs", "--by", "cgroup", "--bytes"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(cg_path.as_str()))
        .collect();
    assert_eq!(
        rows.len(),
        2,
        "a group row and a reconciliation row:\n{text}"
    );
    let recon = rows[1].split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        recon,
        [
            cg_path.as_str(),
            "1",
            &((n + m) * pg).to_string(),
            &((n + m) * pg).to_string(),
            &(n * pg).to_string(),
            &format!("-{}", m * pg),
        ]
    );
    assert!(text.contains("first touched"));

    drop(child);
    drop(cg);
}

/// A child moved into a cgroup laid out as kubelet's cgroupfs driver does
/// (`kubepods/burstable/pod<UID>/<container ID>`, below a test cgroup): `procs --json` names
/// its pod and container.
#[test]
fn procs_json_names_pod_and_container_from_the_cgroup_path() {
    if !require_root("creates memory cgroups") {
        return;
    }
    let Some((top, top_path)) = make_cgroup() else {
        return;
    };
    let uid = "6c4d0a7e-93b1-4f2e-8d5a-1b2c3d4e5f60";
    let id = "3f7a9c1e5b2d4f6a8c0e1a3b5c7d9e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d";
    let rel = format!("kubepods/burstable/pod{uid}/{id}");
    let mut dirs = Nested(Vec::new());
    let mut path = top.path.clone();
    for component in rel.split('/') {
        path = path.join(component);
        std::fs::create_dir(&path).unwrap();
        dirs.0.push(CgroupDir { path: path.clone() });
    }
    let procs = c_path(&path.join("cgroup.procs"));
    let child = fork_child(&[], &[], After::Pause, move || {
        // SAFETY: raw syscalls on a NUL-terminated buffer; "0" moves the writing process.
        unsafe {
            let f = libc::open(procs.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
            if f < 0 || libc::write(f, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(90);
            }
            libc::close(f);
        }
        0
    });
    let doc = json(&["procs", "--json", "--pid", &child.pid().to_string()]);
    let p = process(&doc, child.pid()).expect("the child");
    assert_eq!(p["cgroup"], format!("{top_path}/{rel}").as_str());
    assert_eq!(p["pod_uid"], uid);
    assert_eq!(p["container_id"], id);
    assert!(p.get("unit").is_none(), "{p}");
    // A process outside: no pod, no container.
    let me = json(&["procs", "--json", "--pid", &my_pid().to_string()]);
    let me = process(&me, my_pid()).expect("the test process");
    assert!(me.get("pod_uid").is_none() && me.get("container_id").is_none());

    drop(child);
    drop(dirs);
    drop(top);
}

/// Nested cgroups, outermost first; removed innermost first on drop (also on panic).
struct Nested(Vec<CgroupDir>);

impl Drop for Nested {
    fn drop(&mut self) {
        while let Some(d) = self.0.pop() {
            drop(d);
        }
    }
}

/// A spawned command, SIGKILLed and reaped on drop (also on panic).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A "container" of a pod laid out as kubelet's cgroupfs driver does: a shell moved into
/// `kubepods/burstable/pod<UID>/<ID>` (below a test cgroup) in a mount namespace of its own
/// with a 1 MiB tmpfs at /dev/shm, holding a 10-page file there open, and a 512 KiB emptyDir at
/// kubelet's path with 3 pages nobody holds. `procs --by pod` shows the
/// pod's shared memory against the kernel's total_shmem of the pod's cgroup, its /dev/shm used
/// against its limit, to the page, in the table, the JSON and the metrics; `--by container`
/// and `--by unit` group it too.
#[test]
fn procs_by_pod_shows_dev_shm_against_its_limit() {
    if !require_root("creates memory cgroups and mounts a tmpfs") {
        return;
    }
    if which("unshare").is_none() {
        common::skip_missing("unshare (util-linux) is not installed");
        return;
    }
    let Some((top, top_path)) = make_cgroup() else {
        return;
    };
    let uid = "5a2b7c9d-1e3f-4a5b-8c7d-9e0f1a2b3c4d";
    let id = "9c1e5b2d4f6a8c0e1a3b5c7d9e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d3f7a";
    let rel = format!("kubepods/burstable/pod{uid}/{id}");
    let mut dirs = Nested(Vec::new());
    let mut path = top.path.clone();
    for component in rel.split('/') {
        path = path.join(component);
        std::fs::create_dir(&path).unwrap();
        dirs.0.push(CgroupDir { path: path.clone() });
    }
    let pg = page();
    let (pages, limit) = (10u64, 1u64 << 20);
    let file = format!("shmwho-pod-{}", unique());
    // The shell joins the cgroup before it writes: the kernel charges the file's pages to the
    // container's cgroup, which the pod's total_shmem includes. The mount dies with the
    // namespace when the shell (then sleep) is killed.
    // An emptyDir as kubelet mounts one (below a directory of ours, in the child's namespace
    // only), with 3 pages nobody holds.
    let kubelet = tempfile::tempdir_in("/tmp").unwrap();
    let cache = kubelet
        .path()
        .join(format!("pods/{uid}/volumes/kubernetes.io~empty-dir/cache"));
    std::fs::create_dir_all(&cache).unwrap();
    let (cache_pages, cache_limit) = (3u64, 512u64 << 10);
    let script = format!(
        "echo $$ > {procs} && mount -t tmpfs -o size={limit} shmwho-pod /dev/shm && \
         head -c {bytes} /dev/zero > /dev/shm/{file} && exec 3</dev/shm/{file} && \
         mount -t tmpfs -o size={cache_limit} shmwho-pod {cache} && \
         head -c {cache_bytes} /dev/zero > {cache}/f && \
         echo ready && exec sleep 600",
        procs = path.join("cgroup.procs").display(),
        bytes = pages * pg,
        cache = cache.display(),
        cache_bytes = cache_pages * pg,
    );
    let mut child = Killed(
        std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready", "the container shell set up");
    let pid = i64::from(child.0.id());
    let pod_cg = format!("{top_path}/kubepods/burstable/pod{uid}");

    // memory.stat is flushed lazily: wait for the kernel's figure, up to 10 s.
    let pod_dir = dirs.0[2].path.clone();
    let paid = (pages + cache_pages) * pg;
    let mut kernel = None;
    for _ in 0..100 {
        let stat = std::fs::read(pod_dir.join("memory.stat")).unwrap();
        kernel = parse_stat_subtree_shmem(&stat, version());
        if kernel == Some(paid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(kernel, Some(paid), "the pod's cgroup pays for both files");

    let doc = json(&["procs", "--by", "pod", "--json"]);
    let p = process(&doc, pid).expect("the container's process");
    assert_eq!(p["pod_uid"], uid);
    assert_eq!(p["container_id"], id);
    let group = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["pod_uid"] == uid)
        .expect("a group for the pod");
    assert_eq!(group["processes"], 1);
    assert_eq!(
        u(&group["shared_charged_bytes"]),
        pages * pg,
        "it holds the file"
    );
    assert!(group.get("container_id").is_none(), "{group}");
    let pod = doc["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["pod_uid"] == uid)
        .expect("a pod row");
    assert_eq!(pod["cgroup"], pod_cg.as_str());
    assert_eq!(u(&pod["owner_bytes"]), pages * pg);
    assert_eq!(u(&pod["kernel_shmem_bytes"]), paid);
    assert_eq!(
        u(&pod["kernel_minus_owner_bytes"]),
        cache_pages * pg,
        "the emptyDir's file is held by nobody: the pod pays, no process is charged"
    );
    assert_eq!(u(&pod["dev_shm_used_bytes"]), pages * pg);
    assert_eq!(u(&pod["dev_shm_size_bytes"]), limit);
    assert_eq!(u(&pod["dev_shm_free_bytes"]), limit - pages * pg);
    let volumes = pod["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 2, "{volumes:?}");
    assert_eq!(volumes[0]["mount_point"], "/dev/shm");
    assert!(volumes[0]["empty_dir"].is_null(), "the runtime's /dev/shm");
    assert_eq!(volumes[1]["mount_point"], cache.to_str().unwrap());
    assert_eq!(volumes[1]["empty_dir"], "cache");
    assert_eq!(u(&volumes[1]["used_bytes"]), cache_pages * pg);
    assert_eq!(u(&volumes[1]["size_bytes"]), cache_limit);
    assert_eq!(u(&volumes[1]["free_bytes"]), cache_limit - cache_pages * pg);

    let out = run(&["procs", "--by", "pod", "--bytes"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.contains(uid))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "a group row and a pod row:\n{text}");
    let b = |v: u64| v.to_string();
    assert_eq!(
        rows[1],
        [
            uid,
            "1",
            &b(pages * pg),
            &b(pages * pg),
            &b(paid),
            &b(cache_pages * pg),
            &b(pages * pg),
            &b(limit),
            &b(limit - pages * pg),
        ]
    );
    assert!(text.contains("could not resize shared memory segment"));

    for (by, key, want) in [("container", "container_id", id), ("unit", "unit", "-")] {
        let doc = json(&["procs", "--by", by, "--json", "--pid", &pid.to_string()]);
        let groups = doc["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1, "{by}: {groups:?}");
        if want == "-" {
            assert!(groups[0].get(key).is_none(), "no unit in the path");
        } else {
            assert_eq!(groups[0][key], want);
            assert_eq!(groups[0]["pod_uid"], uid, "a container's pod");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "export",
        "--textfile",
        dir.path().to_str().unwrap(),
        "--top",
        "100000",
    ]);
    assert!(out.status.success());
    let samples = parse_metrics(&std::fs::read_to_string(dir.path().join("shmwho.prom")).unwrap());
    let metric = |name: &str, mount_point: Option<&str>| {
        let samples: Vec<u64> = samples
            .iter()
            .filter(|s| s.name == name && s.labels.get("pod_uid").map(String::as_str) == Some(uid))
            .filter(|s| {
                mount_point
                    .is_none_or(|m| s.labels.get("mount_point").map(String::as_str) == Some(m))
            })
            .map(|s| s.value.parse::<u64>().unwrap())
            .collect();
        assert!(samples.len() <= 1, "{name}: one series");
        samples.first().copied()
    };
    assert_eq!(metric("shmwho_pod_kernel_shmem_bytes", None), Some(paid));
    assert_eq!(
        metric("shmwho_pod_shared_charged_bytes", None),
        Some(pages * pg)
    );
    let shm = Some("/dev/shm");
    assert_eq!(
        metric("shmwho_pod_volume_used_bytes", shm),
        Some(pages * pg)
    );
    assert_eq!(metric("shmwho_pod_volume_size_bytes", shm), Some(limit));
    let cache_mp = cache.to_str();
    assert_eq!(
        metric("shmwho_pod_volume_used_bytes", cache_mp),
        Some(cache_pages * pg)
    );
    assert_eq!(
        metric("shmwho_pod_volume_size_bytes", cache_mp),
        Some(cache_limit)
    );
    let proc_series = samples
        .iter()
        .find(|s| {
            s.name == "shmwho_process_shared_charged_bytes" && s.labels["pid"] == pid.to_string()
        })
        .expect("the process is among the top charges");
    assert_eq!(proc_series.labels["pod_uid"], uid);
    assert_eq!(proc_series.labels["container_id"], id);

    drop(child);
    drop(kubelet);
    drop(dirs);
    drop(top);
}

/// The memory controller's version here (the test skipped when there is none).
fn version() -> CgroupVersion {
    parse_mounts(&std::fs::read("/proc/self/mountinfo").unwrap())
        .memory_version()
        .unwrap()
}

/// The path of `tool` on PATH.
fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(tool))
        .find(|p| p.is_file())
}

/// Processes in two fresh memory cgroups and in ours: as root the scan names each cgroup once,
/// from the kernfs ids the BPF `task` iterator gives (src/collect/process.rs `cgroup_of`); each
/// process gets the cgroup the walk of `/proc/PID/cgroup` alone gives it.
#[test]
fn cgroups_named_from_the_iterator_match_each_processs_own() {
    if !require_root("creates memory cgroups") {
        return;
    }
    let (Some((a, a_path)), Some((b, b_path))) = (make_cgroup(), make_cgroup()) else {
        return;
    };
    let join = |dir: &CgroupDir| {
        let procs = c_path(&dir.path.join("cgroup.procs"));
        fork_child(&[], &[], After::Pause, move || {
            // SAFETY: raw syscalls on a NUL-terminated buffer; "0" moves the writing process.
            unsafe {
                let f = libc::open(procs.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
                if f < 0 || libc::write(f, b"0".as_ptr().cast(), 1) != 1 {
                    libc::_exit(90);
                }
                libc::close(f);
            }
            0
        })
    };
    let kids = [join(&a), join(&a), join(&b)];
    let cgroups = |no_bpf: bool| {
        let _g = lock();
        let mut c = cmd();
        if no_bpf {
            c.env("SHMWHO_NO_BPF", "1");
        }
        let args = ["procs", "--json"];
        let doc = parse_ok(&args, &c.args(args).output().expect("run shmwho"));
        let mine = [my_pid(), kids[0].pid(), kids[1].pid(), kids[2].pid()];
        mine.map(|pid| process(&doc, pid).expect("listed")["cgroup"].clone())
    };
    let (with, without) = (cgroups(false), cgroups(true));
    assert_eq!(with, without);
    assert_eq!(with[1], a_path.as_str());
    assert_eq!(with[2], a_path.as_str());
    assert_eq!(with[3], b_path.as_str());
    drop(kids);
    drop((a, b));
}

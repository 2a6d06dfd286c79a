//! The lab's watcher and its refusals: a SIGKILLed master leaves no SysV segment, /dev/shm or
//! tmpfs file behind, and sizes or worker counts the host cannot take are refused.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `(shmid, cpid)` of every SysV segment, from /proc/sysvipc/shm.
fn segments() -> Vec<(i64, i64)> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(1)?.parse().ok()?, f.get(4)?.parse().ok()?))
        })
        .collect()
}

/// Removes what a failed test leaves behind: the master's segment (only if that master created
/// it) and the two files. Runs on panic.
struct Leftovers {
    master: i64,
    shmid: i64,
    files: Vec<PathBuf>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if segments().contains(&(self.shmid, self.master)) {
            // SAFETY: IPC_RMID ignores the buffer argument.
            unsafe { libc::shmctl(self.shmid as i32, libc::IPC_RMID, std::ptr::null_mut()) };
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[test]
fn sigkill_of_the_master_removes_what_outlives_it() {
    if !require_root("mounts a tmpfs for the lab's tmpfs file") {
        return;
    }
    let mount = TmpfsMount::new("8m");
    let dir = mount.path.to_str().unwrap().to_string();
    let mut lab = Spawned::start(&[
        "lab",
        "--size",
        "1M",
        "--sysv",
        "1M",
        "--posix",
        "1M",
        "--tmpfs",
        "1M",
        "--tmpfs-dir",
        &dir,
        "--json",
        "--for",
        "120",
    ]);
    let truth = lab.json();
    let master = lab.pid();
    let objects = truth["objects"].as_array().expect("objects");
    let of = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {truth}"))
    };
    let shmid = of("sysv")["shmid"].as_i64().expect("shmid");
    let posix = PathBuf::from(format!("/dev/shm/shmwho-lab-{master}"));
    let tmpfs = Path::new(&dir).join(format!("shmwho-lab-{master}"));
    let _guard = Leftovers {
        master,
        shmid,
        files: vec![posix.clone(), tmpfs.clone()],
    };
    assert!(
        segments().contains(&(shmid, master)),
        "segment {shmid} made"
    );
    assert!(posix.exists() && tmpfs.exists(), "files made");

    lab.child.kill().expect("SIGKILL the master");
    lab.child.wait().expect("reap the master");

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seg = segments().contains(&(shmid, master));
        let files: Vec<&PathBuf> = [&posix, &tmpfs]
            .into_iter()
            .filter(|p| p.exists())
            .collect();
        if !seg && files.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "5 s after SIGKILL of the master: segment left: {seg}, files left: {files:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_clean_exit_still_removes_everything_once() {
    if !require_root("creates a SysV segment and a /dev/shm file as the lab does") {
        return;
    }
    let mut lab = Spawned::start(&[
        "lab", "--size", "1M", "--sysv", "1M", "--posix", "1M", "--json", "--for", "120",
    ]);
    let master = lab.pid();
    let truth = lab.json();
    let shmid = truth["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "sysv")
        .and_then(|o| o["shmid"].as_i64())
        .expect("shmid");
    let posix = PathBuf::from(format!("/dev/shm/shmwho-lab-{master}"));
    let _guard = Leftovers {
        master,
        shmid,
        files: vec![posix.clone()],
    };
    lab.stop();
    let status = lab.child.wait().expect("status");
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    use std::io::Read as _;
    lab.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("cleaned up"), "{err}");
    assert!(!err.contains("cleanup:"), "no cleanup step failed: {err}");
    assert!(!segments().contains(&(shmid, master)));
    assert!(!posix.exists());
}

fn refused(args: &[&str], expect: &[&str]) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "nothing printed on stdout: {args:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("shmwho: "), "{err}");
    for e in expect {
        assert!(err.contains(e), "{args:?}: {e:?} not in {err}");
    }
}

#[test]
fn sizes_beyond_mem_available_are_refused_without_force() {
    // 100,000 TiB is beyond MemAvailable on any machine that runs this.
    refused(
        &["lab", "--size", "100000T", "--for", "0"],
        &["MemAvailable is", "--force"],
    );
    refused(
        &["lab", "--size", "1M", "--sysv", "100000T", "--for", "0"],
        &["the lab's objects", "MemAvailable is", "--force"],
    );
    refused(
        &[
            "lab",
            "pool",
            "--workers",
            "1",
            "--shared",
            "100000T",
            "--for",
            "0",
        ],
        &["MemAvailable is", "--force"],
    );
}

#[test]
fn workers_beyond_the_hosts_limits_are_refused_without_force() {
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let workers = (pid_max + 1).to_string();
    refused(
        &[
            "lab",
            "pool",
            "--workers",
            &workers,
            "--shared",
            "4K",
            "--for",
            "0",
        ],
        &["--workers", "more processes", "--force"],
    );
}

//! Containers seen from the host: real IPC and mount namespaces made with `unshare`, standing in
//! for containers, and what shmwho reports of them, to the page.
//!
//! Everything created lives in namespaces that die with the child that made them (its
//! segments and tmpfs mounts go with them), or is unmounted by a guard.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// `ipc:[N]` of process `pid` → N.
fn ns_of(pid: i64, kind: &str) -> u64 {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    let link = link.to_str().unwrap();
    link.split_once('[')
        .unwrap()
        .1
        .trim_end_matches(']')
        .parse()
        .unwrap()
}

fn sysv_in(doc: &Value, ns: u64, shmid: i64) -> Option<&Value> {
    objects(doc).iter().find(|o| {
        o["kind"] == "sysv"
            && o["shmid"].as_i64() == Some(shmid)
            && o["namespace"].as_u64() == Some(ns)
    })
}

fn file_in<'a>(doc: &'a Value, ns: u64, path: &Path) -> Option<&'a Value> {
    objects(doc).iter().find(|o| {
        o["path"].as_str() == Some(path.to_str().unwrap()) && o["namespace"].as_u64() == Some(ns)
    })
}

fn mount_in<'a>(doc: &'a Value, ns: u64, point: &Path) -> Vec<&'a Value> {
    doc["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["namespace"].as_u64() == Some(ns) && m["mount_point"].as_str() == point.to_str()
        })
        .collect()
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// In the child: `_exit(code)` unless `rc` is 0 or more.
fn ok(rc: libc::c_int, code: i32) -> libc::c_int {
    if rc < 0 {
        child::fail(code);
    }
    rc
}

/// Creates `path` (a C string's address) with `pages` pages written, and closes it.
fn file_of_pages(path: usize, pages: u64, page: u64, code: i32) {
    // SAFETY: path points at a C string the parent keeps alive (copied by fork).
    let fd = unsafe {
        libc::open(
            path as *const libc::c_char,
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    ok(fd, code);
    child::pwrite_pages(fd, 0, pages, page, code + 1);
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
}

/// A container: a child in its own IPC and mount namespaces with a private /dev/shm holding a
/// file nobody holds, SysV segment 0 (attached by it, its creator) and segment 1 (detached, its
/// creator alive), and a tmpfs with a file, hidden under another tmpfs.
#[test]
fn container_namespaces_are_listed_exactly() {
    if !require_root("unshare of IPC and mount namespaces needs CAP_SYS_ADMIN") {
        return;
    }
    let page = page();
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let hidden_dir = dir.path().join("hidden");
    std::fs::create_dir(&hidden_dir).unwrap();
    let shm_name = format!("shmwho-test-{}-ct", unique());
    let shm_file = PathBuf::from("/dev/shm").join(&shm_name);
    let hidden_file = hidden_dir.join("under");
    let (root, dev_shm, tmpfs, hidden_c, shm_c, hidden_file_c) = (
        c("/"),
        c("/dev/shm"),
        c("tmpfs"),
        c(hidden_dir.to_str().unwrap()),
        c(shm_file.to_str().unwrap()),
        c(hidden_file.to_str().unwrap()),
    );
    let (root, dev_shm, tmpfs, hidden_c, shm_c, hidden_file_c) = (
        root.as_ptr() as usize,
        dev_shm.as_ptr() as usize,
        tmpfs.as_ptr() as usize,
        hidden_c.as_ptr() as usize,
        shm_c.as_ptr() as usize,
        hidden_file_c.as_ptr() as usize,
    );
    let ch = fork_child(&[], &[], After::Pause, move || {
        let s = |p: usize| p as *const libc::c_char;
        // SAFETY: raw syscalls on C strings the parent keeps alive; this child is single-threaded.
        unsafe {
            ok(libc::unshare(libc::CLONE_NEWIPC | libc::CLONE_NEWNS), 10);
            ok(
                libc::mount(
                    core::ptr::null(),
                    s(root),
                    core::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    core::ptr::null(),
                ),
                11,
            );
            ok(
                libc::mount(s(tmpfs), s(dev_shm), s(tmpfs), 0, core::ptr::null()),
                12,
            );
        }
        file_of_pages(shm_c, 5, page, 20);
        // SAFETY: as above.
        unsafe {
            ok(
                libc::mount(s(tmpfs), s(hidden_c), s(tmpfs), 0, core::ptr::null()),
                13,
            );
        }
        file_of_pages(hidden_file_c, 7, page, 30);
        // SAFETY: as above.
        unsafe {
            ok(
                libc::mount(s(tmpfs), s(hidden_c), s(tmpfs), 0, core::ptr::null()),
                14,
            );
        }
        // SAFETY: plain syscalls.
        let a = ok(
            unsafe { libc::shmget(libc::IPC_PRIVATE, (4 * page) as usize, 0o600) },
            40,
        );
        let pa = child::shmat(a, 41);
        child::touch(pa, 0, 3, page);
        // SAFETY: plain syscalls.
        let b = ok(
            unsafe { libc::shmget(libc::IPC_PRIVATE, (6 * page) as usize, 0o600) },
            42,
        );
        let pb = child::shmat(b, 43);
        child::touch(pb, 0, 2, page);
        // SAFETY: detaching the segment just attached.
        unsafe { libc::shmdt(pb as *const libc::c_void) };
        ((a as i64) << 32) | b as i64
    });
    let pid = ch.pid();
    let (a, b) = (ch.value >> 32, ch.value & 0xffff_ffff);
    // The first segment of a fresh IPC namespace is shmid 0.
    assert_eq!((a, b), (0, 1));
    let (ipc, mnt) = (ns_of(pid, "ipc"), ns_of(pid, "mnt"));
    let doc = objects_doc();

    let seg0 = sysv_in(&doc, ipc, 0).expect("shmid 0 of the container is listed");
    assert_eq!(holders(seg0), vec![map(pid)], "{seg0}");
    assert_eq!(owner_pid(seg0), Some(pid), "{seg0}");
    assert_eq!(u(&seg0["size_bytes"]), 4 * page);
    assert_eq!(u(&seg0["resident_bytes"]), 3 * page);

    let seg1 = sysv_in(&doc, ipc, 1).expect("detached segment is listed");
    assert!(holders(seg1).is_empty(), "{seg1}");
    assert_eq!(owner_pid(seg1), Some(pid), "creator alive owns it: {seg1}");
    assert_eq!(u(&seg1["size_bytes"]), 6 * page);
    assert_eq!(u(&seg1["resident_bytes"]), 2 * page);

    let f = file_in(&doc, mnt, &shm_file).expect("unheld file on the private /dev/shm");
    assert_eq!(f["kind"], "posix_shm");
    assert!(holders(f).is_empty());
    assert_eq!(f["exact"], true);
    assert_eq!(u(&f["size_bytes"]), 4 * page + 1);
    assert_eq!(u(&f["resident_bytes"]), 5 * page);
    let m = mount_in(&doc, mnt, Path::new("/dev/shm"));
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["hidden"], false);
    assert_eq!(u(&m[0]["used_bytes"]), 5 * page);
    assert_eq!(u(&m[0]["listed_bytes"]), 5 * page);

    let h = file_in(&doc, mnt, &hidden_file).expect("file on the hidden tmpfs");
    assert_eq!(h["kind"], "tmpfs");
    assert_eq!(h["exact"], true);
    assert_eq!(u(&h["size_bytes"]), 6 * page + 1);
    assert_eq!(u(&h["resident_bytes"]), 7 * page);
    let hm: Vec<_> = mount_in(&doc, mnt, &hidden_dir)
        .into_iter()
        .filter(|m| m["hidden"] == true)
        .collect();
    assert_eq!(hm.len(), 1, "{hm:?}");
    assert_eq!(u(&hm[0]["used_bytes"]), 7 * page);

    // The table names them too, and its footer no longer blames "other namespaces".
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("[ipc ns {ipc}]")), "{text}");
    assert!(!text.contains("other namespaces"), "{text}");
    drop(ch);
    // The host never saw the container's mounts.
    // (Bytes: other tests mount tmpfs at non-UTF-8 paths.)
    let ours = std::fs::read("/proc/self/mountinfo").unwrap();
    let needle = hidden_dir.to_str().unwrap().as_bytes();
    assert!(!ours.windows(needle.len()).any(|w| w == needle));
}

/// Unmounts a bind mount that pins a namespace (lazily: the kernel frees the namespace when
/// nothing else holds it).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let p = CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: plain syscall with a valid C string.
        unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
    }
}

/// An IPC namespace with no process left, kept alive by a bind mount of its nsfs file: its
/// segment is listed, owned by nobody, the namespace named.
#[test]
fn pinned_ipc_namespace_without_process() {
    if !require_root("unshare and bind mounts need CAP_SYS_ADMIN") {
        return;
    }
    let page = page();
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let pin = dir.path().join("ipcns");
    std::fs::write(&pin, b"").unwrap();
    let (src, pin_c) = (c("/proc/self/ns/ipc"), c(pin.to_str().unwrap()));
    let (src, pin_c) = (src.as_ptr() as usize, pin_c.as_ptr() as usize);
    let _unmount = Unmount(pin.clone());
    let ch = fork_child(&[], &[], After::Exit, move || {
        let s = |p: usize| p as *const libc::c_char;
        // SAFETY: raw syscalls on C strings the parent keeps alive.
        unsafe {
            ok(libc::unshare(libc::CLONE_NEWIPC), 10);
            let id = ok(
                libc::shmget(libc::IPC_PRIVATE, (5 * page) as usize, 0o600),
                11,
            );
            let p = child::shmat(id, 12);
            child::touch(p, 0, 4, page);
            libc::shmdt(p as *const libc::c_void);
            ok(
                libc::mount(
                    s(src),
                    s(pin_c),
                    core::ptr::null(),
                    libc::MS_BIND,
                    core::ptr::null(),
                ),
                13,
            );
            id as i64
        }
    });
    assert_eq!(ch.value, 0);
    // The nsfs file's inode number is the namespace's.
    let ns = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&pin).unwrap().ino()
    };
    let doc = objects_doc();
    let seg = sysv_in(&doc, ns, 0).expect("segment of the pinned namespace");
    assert!(holders(seg).is_empty());
    assert_eq!(owner_pid(seg), None);
    assert_eq!(u(&seg["size_bytes"]), 5 * page);
    assert_eq!(u(&seg["resident_bytes"]), 4 * page);
    assert!(doc["notes"]["pinned_ipc_namespaces"].as_u64().unwrap() >= 1);
}

/// shmwho in its own pid and mount namespaces, with the host's /proc and / mounted inside (as
/// in a container): it reports the host's objects exactly, with host pids.
#[test]
fn host_proc_and_root_mounted_in_a_container() {
    if !require_root("unshare of pid and mount namespaces needs CAP_SYS_ADMIN") {
        return;
    }
    let page = page();
    let mfd = Memfd::new("shmwho-test-hostroot", 6 * page);
    pwrite_pages(mfd.raw(), 0, 3);
    let seg = SysvSeg::new(4 * page);
    let mut posix = PosixShm::new("-hostroot", 5 * page);
    pwrite_pages(posix.raw(), 0, 2);
    posix.close();
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let d = dir.path().to_str().unwrap();
    let script = format!(
        "set -e; mount --make-rprivate /; mkdir {d}/proc {d}/host; \
         mount --bind /proc {d}/proc; mount --rbind / {d}/host; mount -t proc proc /proc; \
         exec {} --proc-root {d}/proc --host-root {d}/host --json",
        bin()
    );
    let out = {
        let _g = lock();
        std::process::Command::new("unshare")
            .args(["--pid", "--fork", "--mount", "sh", "-c", &script])
            .output()
            .expect("unshare (util-linux) runs")
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let me = my_pid();

    let m = find_inode(&doc, &mfd.identity()).expect("memfd listed");
    assert_eq!(holders(m), vec![fd(me)]);
    assert_eq!(u(&m["size_bytes"]), 6 * page);
    assert_eq!(u(&m["resident_bytes"]), 3 * page);

    let s = find_shmid(&doc, seg.shmid).expect("segment listed");
    // Its creator is not named: /proc/sysvipc/shm gives cpid in the reader's pid namespace,
    // where the host's pids are not (a DaemonSet shares the host's, hostPID).
    assert_eq!(u(&s["size_bytes"]), 4 * page);
    assert_eq!(s["namespace"], Value::Null);

    let p = find_inode(&doc, &posix.identity()).expect("unheld posix shm listed");
    assert_eq!(p["kind"], "posix_shm");
    assert_eq!(p["path"].as_str(), posix.path.to_str());
    assert_eq!(p["namespace"], Value::Null, "{p}");
    assert_eq!(u(&p["resident_bytes"]), 2 * page);
    drop(mfd);
}

/// Both roots are refused like `--proc-root` alone would be when elevated; accepted otherwise,
/// and documented in --help.
#[test]
fn root_flags_are_documented() {
    let out = run(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--proc-root <DIR>"), "{help}");
    assert!(help.contains("--host-root <DIR>"), "{help}");
    for sub in ["procs", "export", "record", "top", "show"] {
        let out = run(&[sub, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--host-root <DIR>"), "{sub}: {help}");
    }
}

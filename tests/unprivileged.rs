//! Without privileges: objects that cannot be measured are listed as marked lower bounds, and
//! the output says once how to get exact figures.
//!
//! Runs as root and switches to uid 65534 with `setpriv`, both for the lab that creates the
//! objects and for the scan, so the scan sees only its own user's processes' objects.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child as Proc, Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];

fn as_nobody(args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args(NOBODY).arg(bin()).args(args);
    // A directory uid 65534 may enter.
    c.current_dir("/");
    c
}

/// The lab process: SIGTERM on drop, SIGKILL if it does not go within 5 s.
struct Lab {
    proc: Proc,
    stderr: tempfile::NamedTempFile,
}

impl Lab {
    fn spawn(args: &[&str]) -> Lab {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let proc = {
            let _g = lock();
            as_nobody(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr.reopen().unwrap())
                .spawn()
                .expect("spawn setpriv")
        };
        Lab { proc, stderr }
    }

    /// The first stdout line, or None when stdout closed first.
    fn first_line(&mut self) -> Option<String> {
        let mut r = BufReader::new(self.proc.stdout.take().unwrap());
        let mut line = String::new();
        (r.read_line(&mut line).unwrap() > 0).then_some(line)
    }

    fn stderr(&mut self) -> String {
        let _ = self.proc.wait();
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let pid = self.proc.id() as libc::pid_t;
        if let Ok(None) = self.proc.try_wait() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.proc.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.proc.kill();
        }
        let _ = self.proc.wait();
    }
}

#[test]
fn unprivileged_scan_gives_marked_lower_bounds() {
    if !require_root("switches to uid 65534 with setpriv") {
        return;
    }
    let mut lab = Lab::spawn(&["lab", "--json", "--size", "8M", "--for", "30"]);
    let Some(line) = lab.first_line() else {
        let err = lab.stderr();
        if err.contains("lab not built yet") {
            common::skip_missing(&format!("`shmwho lab` is not built yet ({})", err.trim()));
            return;
        }
        panic!("lab printed nothing; stderr: {err}");
    };
    let truth: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(truth["lab"], "experiment");
    let master = truth["master_pid"].as_i64().unwrap();
    assert_eq!(master, lab.proc.id() as i64, "setpriv execs the lab");
    let children: Vec<i64> = truth["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["alive"], true, "{c}");
            c["pid"].as_i64().unwrap()
        })
        .collect();
    let anon = truth["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "anon_shared")
        .expect("lab has an anon_shared object");
    let (ino, true_resident) = (u(&anon["inode"]), u(&anon["resident_bytes"]));
    assert!(true_resident > 0);

    let out = {
        let _g = lock();
        as_nobody(&["--json"]).output().unwrap()
    };
    let doc = parse_ok(&["(as nobody) --json"], &out);
    let o = objects(&doc)
        .iter()
        .find(|o| {
            o["kind"] == "anon_shared"
                && o["inode"] == ino
                && (anon["dev"].is_null() || o["dev"] == anon["dev"])
        })
        .unwrap_or_else(|| panic!("lab object {ino} not listed:\n{doc:#}"));
    assert_eq!(o["exact"], false, "map_files cannot be stat'ed: {o}");
    assert_eq!(o["estimate_reason"], "map_files_denied");
    assert_eq!(doc["exact"], false);
    let r = u(&o["resident_bytes"]);
    assert!(
        r > 0 && r <= true_resident,
        "lower bound {r} not in (0, {true_resident}]"
    );
    let hp: Vec<i64> = holders(o).iter().map(|h| h.0).collect();
    for p in children.iter().chain([&master]) {
        assert!(hp.contains(p), "holder {p} missing: {hp:?}");
    }

    let out = {
        let _g = lock();
        as_nobody(&[]).output().unwrap()
    };
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("sudo setcap").count(),
        1,
        "the hint is given once:\n{text}"
    );
    assert!(text.contains('~'), "estimates are marked:\n{text}");
    drop(lab);
}

/// Objects of uid 65534 made by children that dropped to it. Reachable without privileges: a
/// memfd through `/proc/PID/fd` (the owner may stat it) and a /dev/shm file by path, so both are
/// exact; an anonymous shared mapping only through `map_files`, so it is a lower bound.
#[test]
fn unprivileged_scan_is_exact_where_it_can_be() {
    if !require_root("switches to uid 65534") {
        return;
    }
    let pg = page();
    let (n, k) = (149u64, 53u64);
    let name = format!("shmwho nobody {}", unique());
    let cname = std::ffi::CString::new(name.clone()).unwrap();
    // Closures capture only plain values: a CString moved in would be freed in the child.
    let cname_ptr = cname.as_ptr() as usize;
    let memfd_child = fork_child(&[], &[], After::Pause, move || {
        child::become_user(65534, 6);
        // SAFETY (child): raw syscalls only.
        let fd = unsafe { libc::memfd_create(cname_ptr as *const libc::c_char, libc::MFD_CLOEXEC) };
        // SAFETY (child): raw syscall.
        if fd < 0 || unsafe { libc::ftruncate(fd, (n * pg) as libc::off_t) } != 0 {
            child::fail(3);
        }
        child::pwrite_pages(fd, 2, k, pg, 4);
        fd as i64
    });
    let memfd_id = path_identity(std::path::Path::new(&format!(
        "/proc/{}/fd/{}",
        memfd_child.pid(),
        memfd_child.value
    )));

    let (pn, j) = (61u64, 17u64);
    let shm = PosixShm::reserve("");
    let cpath = std::ffi::CString::new(shm.path.to_str().unwrap()).unwrap();
    let cpath_ptr = cpath.as_ptr() as usize;
    let shm_child = fork_child(&[], &[], After::Pause, move || {
        child::become_user(65534, 6);
        // SAFETY (child): raw syscalls only.
        let fd = unsafe {
            libc::open(
                cpath_ptr as *const libc::c_char,
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600,
            )
        };
        // SAFETY (child): raw syscall.
        if fd < 0 || unsafe { libc::ftruncate(fd, (pn * pg) as libc::off_t) } != 0 {
            child::fail(3);
        }
        let addr = child::map_and_close(fd, (pn * pg) as usize, 5);
        child::touch(addr, 1, j, pg);
        0
    });
    let shm_id = shm.identity();

    let (an, ak) = (307u64, 101u64);
    let anon_child = fork_child(&[], &[], After::Pause, move || {
        child::become_user(65534, 6);
        let addr = child::map(-1, (an * pg) as usize, 5);
        child::touch(addr, 0, ak, pg);
        addr as i64
    });
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", anon_child.pid())).unwrap();
    let prefix = format!("{:x}-", anon_child.value as u64);
    let line: Vec<&str> = maps
        .lines()
        .find(|l| l.starts_with(&prefix))
        .expect("child's mapping in its maps")
        .split_whitespace()
        .collect();
    let anon_ino: u64 = line[4].parse().unwrap();
    // Identity is (dev, inode): maps prints the device in hex, the JSON in decimal.
    let (maj, min) = line[3].split_once(':').unwrap();
    let anon_dev = format!(
        "{}:{}",
        u32::from_str_radix(maj, 16).unwrap(),
        u32::from_str_radix(min, 16).unwrap()
    );

    let out = {
        let _g = lock();
        as_nobody(&["--json"]).output().unwrap()
    };
    let doc = parse_ok(&["(as nobody) --json"], &out);

    let o = find_inode(&doc, &memfd_id).expect("nobody's memfd listed");
    assert_eq!(o["kind"], "memfd");
    assert_eq!(o["name"], name.as_str());
    assert_eq!(
        o["exact"], true,
        "fd of one's own process can be stat'ed: {o}"
    );
    assert_eq!(u(&o["size_bytes"]), n * pg);
    assert_eq!(u(&o["resident_bytes"]), k * pg);
    assert_eq!(holders(o), vec![fd(memfd_child.pid())]);

    let o = find_inode(&doc, &shm_id).expect("nobody's /dev/shm file listed");
    assert_eq!(o["kind"], "posix_shm");
    assert_eq!(
        o["exact"], true,
        "a linked file can be stat'ed by path: {o}"
    );
    assert_eq!(u(&o["size_bytes"]), pn * pg);
    assert_eq!(u(&o["resident_bytes"]), j * pg);
    assert_eq!(holders(o), vec![map(shm_child.pid())]);

    let o = objects(&doc)
        .iter()
        .find(|o| {
            o["kind"] == "anon_shared" && o["inode"] == anon_ino && o["dev"] == anon_dev.as_str()
        })
        .expect("nobody's anonymous region listed");
    assert_eq!(o["exact"], false, "{o}");
    assert_eq!(o["estimate_reason"], "map_files_denied");
    let r = u(&o["resident_bytes"]);
    assert!(
        r > 0 && r <= ak * pg,
        "lower bound {r} not in (0, {}]",
        ak * pg
    );
    assert_eq!(u(&o["size_bytes"]), an * pg, "size from the mapping");
    assert_eq!(holders(o), vec![map(anon_child.pid())]);
}

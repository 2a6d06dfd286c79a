//! Churn beyond tests/races.rs: pids reused while shmwho scans, a SysV segment attached and
//! detached continuously, memfds passed between processes over Unix sockets (and in flight,
//! invisible, in between), with the objects view, the procs view and `--pss` scanning in a
//! loop. Every run must exit 0, and every object of ours it prints must be consistent:
//! resident within size, every holder one of our children that held that very object and was
//! alive while the scan ran, named with its own command (a pid reused between reading a
//! process's `stat` and its `maps` must not lend one process's name to another's mappings).
//!
//! Runs for 8 s; `SHMWHO_CHURN_SECS=60` runs longer. As root, pids are reused on purpose
//! (`/proc/sys/kernel/ns_last_pid`); otherwise only as often as the pid counter wraps.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Names of this run's children and memfds: unique to the run (another run of this test on
/// the host makes children and memfds of its own), commands within the 15 bytes of a comm.
struct Tags {
    /// `cx<pid in base 36>-`: every name of ours starts with it.
    prefix: String,
    reuse_a: &'static str,
    reuse_b: &'static str,
    pass_tx: &'static str,
    pass_rx: &'static str,
    sysv: &'static str,
}

fn tags() -> &'static Tags {
    static TAGS: std::sync::OnceLock<Tags> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| {
        let mut pid = std::process::id();
        let mut tok = String::new();
        loop {
            tok.insert(0, char::from_digit(pid % 36, 36).unwrap());
            pid /= 36;
            if pid == 0 {
                break;
            }
        }
        let prefix = format!("cx{tok}-");
        let comm = |role: &str| -> &'static str { Box::leak(format!("{prefix}{role}").into()) };
        Tags {
            reuse_a: comm("ra"),
            reuse_b: comm("rb"),
            pass_tx: comm("tx"),
            pass_rx: comm("rx"),
            sysv: comm("sv"),
            prefix,
        }
    })
}

/// One child: what it held and when it lived.
#[derive(Clone, Debug)]
struct Life {
    pid: i64,
    comm: &'static str,
    /// memfd name, or `sysv:SHMID`.
    object: String,
    born: Instant,
    died: Option<Instant>,
}

#[derive(Default)]
struct Registry {
    lives: Mutex<Vec<Life>>,
}

impl Registry {
    fn born(&self, pid: i64, comm: &'static str, object: String, born: Instant) -> usize {
        let mut l = self.lives.lock().unwrap();
        l.push(Life {
            pid,
            comm,
            object,
            born,
            died: None,
        });
        l.len() - 1
    }

    fn died(&self, i: usize) {
        self.lives.lock().unwrap()[i].died = Some(Instant::now());
    }

    /// Whether a child with this pid and command held `object` at some time in `[t0, t1]`.
    fn held(&self, pid: i64, comm: &str, object: &str, t0: Instant, t1: Instant) -> bool {
        self.lives.lock().unwrap().iter().any(|l| {
            l.pid == pid
                && l.comm == comm
                && l.object == object
                && l.born <= t1
                && l.died.is_none_or(|d| d >= t0)
        })
    }

    /// What is known of `pid`, for failure messages.
    fn history(&self, pid: i64, t0: Instant) -> String {
        let lives = self.lives.lock().unwrap();
        let ms = |t: Instant| {
            t.saturating_duration_since(t0).as_secs_f64() * 1e3
                - t0.saturating_duration_since(t).as_secs_f64() * 1e3
        };
        lives
            .iter()
            .filter(|l| l.pid == pid)
            .map(|l| {
                format!(
                    "\n  {} held {} from {:.1} ms to {} (scan start = 0)",
                    l.comm,
                    l.object,
                    ms(l.born),
                    l.died
                        .map_or("the end".to_string(), |d| format!("{:.1} ms", ms(d)))
                )
            })
            .collect()
    }

    fn alive_during(&self, pid: i64, comm: &str, t0: Instant, t1: Instant) -> bool {
        self.lives.lock().unwrap().iter().any(|l| {
            l.pid == pid && l.comm == comm && l.born <= t1 && l.died.is_none_or(|d| d >= t0)
        })
    }
}

/// Renames the calling thread; children forked from it take the name as their command.
fn set_thread_name(name: &CString) {
    // SAFETY: prctl with a valid NUL-terminated string (the kernel copies at most 16 bytes).
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

fn linger(n: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: 0,
        tv_nsec: ((n * 7) % 25) as libc::c_long * 1_000_000,
    }
}

/// A child that makes a memfd named `name`, maps it and writes `pages` of it, then waits.
fn memfd_child(name: &CString, pages: u64) -> Child {
    let (pg, name) = (page(), name.as_ptr() as usize);
    fork_child(&[], &[], After::Pause, move || {
        // SAFETY (child): raw syscalls only; `name` points into the parent's memory, which
        // the child shares copy-on-write and only reads.
        unsafe {
            let fd = libc::memfd_create(name as *const libc::c_char, libc::MFD_CLOEXEC);
            if fd < 0 || libc::ftruncate(fd, ((pages + 2) * pg) as libc::off_t) < 0 {
                child::fail(3);
            }
            let addr = child::map(fd, ((pages + 2) * pg) as usize, 5);
            child::touch(addr, 0, pages, pg);
        }
        0
    })
}

/// Forks A holding memfd `<prefix>a-N`, kills it, and (as root) asks the kernel to give the
/// next pid, A's, to B holding `<prefix>b-N`: a scan that read A's `stat` may read B's `maps`.
fn reuse_loop(stop: &AtomicBool, reg: &Registry, reused: &AtomicU64, names: &[CString; 4]) {
    let ns_last_pid = is_root().then_some("/proc/sys/kernel/ns_last_pid");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let t = tags();
        let (obj_a, obj_b) = (format!("{}a-{n}", t.prefix), format!("{}b-{n}", t.prefix));
        let name_a = CString::new(obj_a.clone()).unwrap();
        let name_b = CString::new(obj_b.clone()).unwrap();
        set_thread_name(&names[0]);
        let born = Instant::now();
        let a = memfd_child(&name_a, 1 + n % 4);
        let ia = reg.born(a.pid(), t.reuse_a, obj_a, born);
        // /proc tells a reused pid only by its start time, in clock ticks (10 ms): A lives
        // two ticks at least, so B cannot start in A's tick.
        child::sleep(&libc::timespec {
            tv_sec: 0,
            tv_nsec: 20_000_000 + linger(n).tv_nsec,
        });
        let pid = a.pid();
        a.kill();
        reg.died(ia);
        if let Some(path) = ns_last_pid {
            let _ = std::fs::write(path, (pid - 1).to_string());
        }
        set_thread_name(&names[1]);
        let born = Instant::now();
        let b = memfd_child(&name_b, 1 + (n + 1) % 4);
        let ib = reg.born(b.pid(), t.reuse_b, obj_b, born);
        if b.pid() == pid {
            reused.fetch_add(1, Ordering::Relaxed);
        }
        child::sleep(&linger(n + 3));
        b.kill();
        reg.died(ib);
        n += 1;
    }
}

/// Children attach the one segment, write a few pages, and detach or exit while attached.
fn sysv_loop(stop: &AtomicBool, reg: &Registry, shmid: i32, pages: u64) {
    let pg = page();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let first = (n * 5) % (pages - 4);
        let (detach, wait) = (n.is_multiple_of(2), linger(n));
        let born = Instant::now();
        let i = reg.born(0, tags().sysv, format!("sysv:{shmid}"), born);
        let c = fork_child(&[], &[], After::Exit, move || {
            let addr = child::shmat(shmid, 4);
            child::touch(addr, first, 4, pg);
            if detach {
                // SAFETY (child): detaching the segment attached above.
                unsafe { libc::shmdt(addr as *const libc::c_void) };
            }
            child::sleep(&wait);
            0
        });
        let mut lives = reg.lives.lock().unwrap();
        lives[i].pid = c.pid();
        lives[i].died = Some(Instant::now());
        n += 1;
    }
}

/// Sends `fd` over `sock` with SCM_RIGHTS (child side: no allocation).
unsafe fn send_fd(sock: i32, fd: i32) -> bool {
    let mut byte = [b'm'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 8];
    let mut msg: libc::msghdr = core::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
    core::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
    libc::sendmsg(sock, &msg, 0) == 1
}

/// Receives one fd sent with [`send_fd`]; -1 on failure.
unsafe fn recv_fd(sock: i32) -> i32 {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 8];
    let mut msg: libc::msghdr = core::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = core::mem::size_of_val(&cbuf);
    if libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) != 1 {
        return -1;
    }
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
        return -1;
    }
    core::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>())
}

/// A sender writes `pages` of a new memfd and passes it to a receiver, which maps it. Odd
/// rounds: the sender stays until the receiver is done (both hold it). Even rounds: the sender
/// exits first, leaving the memfd in flight in the socket, held by no process.
fn pass_loop(stop: &AtomicBool, reg: &Registry, names: &[CString; 4]) {
    let pg = page();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let pages = 1 + n % 5;
        let object = format!("{}pass-{n}", tags().prefix);
        let cname = CString::new(object.clone()).unwrap();
        let name = cname.as_ptr() as usize;
        let mut sv = [0i32; 2];
        // SAFETY: sv has room for two fds.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
        // SAFETY: both fds were just created and are ours.
        let (s0, s1) = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
        let (tx, rx) = (s0.as_raw_fd(), s1.as_raw_fd());
        let overlap = n % 2 == 1;
        set_thread_name(&names[2]);
        let born = Instant::now();
        let sender = fork_child(
            &[],
            &[tx],
            if overlap { After::Pause } else { After::Exit },
            move || {
                // SAFETY (child): raw syscalls only.
                unsafe {
                    let fd = libc::memfd_create(name as *const libc::c_char, libc::MFD_CLOEXEC);
                    if fd < 0 || libc::ftruncate(fd, ((pages + 2) * pg) as libc::off_t) < 0 {
                        child::fail(3);
                    }
                    child::pwrite_pages(fd, 0, pages, pg, 4);
                    if !send_fd(tx, fd) {
                        child::fail(5);
                    }
                    if !overlap {
                        libc::close(fd);
                    }
                }
                0
            },
        );
        let is = reg.born(sender.pid(), tags().pass_tx, object.clone(), born);
        if !overlap {
            reg.died(is); // reaped by fork_child: the memfd is in flight
        }
        set_thread_name(&names[3]);
        let wait = linger(n);
        let born = Instant::now();
        let ir = reg.born(0, tags().pass_rx, object, born);
        let receiver = fork_child(&[], &[rx], After::Exit, move || {
            // SAFETY (child): raw syscalls only.
            unsafe {
                let fd = recv_fd(rx);
                if fd < 0 {
                    child::fail(6);
                }
                child::map(fd, ((pages + 2) * pg) as usize, 7);
            }
            child::sleep(&wait);
            0
        });
        {
            let mut lives = reg.lives.lock().unwrap();
            lives[ir].pid = receiver.pid();
            lives[ir].died = Some(Instant::now());
        }
        if overlap {
            drop(sender);
            reg.died(is);
        }
        n += 1;
    }
}

fn u_or0(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

struct Checker<'a> {
    reg: &'a Registry,
    me: i64,
    shmid: i32,
    seg_pages: u64,
    last_seg_resident: u64,
    objects_seen: u64,
    holders_checked: u64,
}

impl Checker<'_> {
    fn objects_doc(&mut self, doc: &Value, t0: Instant, t1: Instant) {
        let pg = page();
        assert_eq!(
            u(&doc["objects_resident_bytes"]),
            shmem_objects_resident(doc)
        );
        let mut seg_seen = false;
        for o in objects(doc) {
            let key = if o["kind"] == "sysv" && o["shmid"] == self.shmid {
                seg_seen = true;
                format!("sysv:{}", self.shmid)
            } else if o["kind"] == "memfd"
                && o["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&tags().prefix))
            {
                o["name"].as_str().unwrap().to_string()
            } else {
                continue; // not ours
            };
            self.objects_seen += 1;
            let (size, res, swap) = (
                u(&o["size_bytes"]),
                u(&o["resident_bytes"]),
                u_or0(&o["swap_bytes"]),
            );
            assert!(res + swap <= size.div_ceil(pg) * pg, "resident > size: {o}");
            let charged: u64 = o["charges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| u(&c["bytes"]))
                .sum();
            if !o["owner"].is_null() {
                assert_eq!(charged, res, "charges sum to resident: {o}");
            }
            let mut rx_holds = false;
            for h in o["holders"].as_array().unwrap() {
                let (pid, comm) = (h["pid"].as_i64().unwrap(), h["comm"].as_str().unwrap());
                self.holders_checked += 1;
                assert!(
                    self.reg.held(pid, comm, &key, t0, t1),
                    "holder {pid} ({comm}) of {key} did not hold it during the scan \
                     ({:.1} ms): {o}\npid {pid}:{}",
                    (t1 - t0).as_secs_f64() * 1e3,
                    self.reg.history(pid, t0)
                );
                rx_holds |= comm == tags().pass_rx;
            }
            if let Some(rest) = key.strip_prefix(&format!("{}pass-", tags().prefix)) {
                let n: u64 = rest.parse().unwrap();
                let pages = 1 + n % 5;
                assert_eq!(size, (pages + 2) * pg, "{o}");
                // The receiver gets the fd only after every page was written.
                if rx_holds {
                    assert_eq!(res, pages * pg, "{o}");
                }
            }
            if key.starts_with("sysv:") {
                assert_eq!(size, self.seg_pages * pg, "{o}");
                assert_eq!(owner_pid(o), Some(self.me), "the creator owns it: {o}");
                assert!(
                    res >= self.last_seg_resident,
                    "a segment's pages are never freed while it exists: {} then {res}: {o}",
                    self.last_seg_resident
                );
                self.last_seg_resident = res;
            }
        }
        assert!(seg_seen, "the segment is listed in every scan");
    }

    fn procs_doc(&mut self, doc: &Value, t0: Instant, t1: Instant) {
        assert_eq!(
            u(&doc["charged_bytes"]) + u(&doc["unheld_bytes"]),
            u(&doc["objects_resident_bytes"]),
            "conservation"
        );
        for p in doc["processes"].as_array().unwrap() {
            let comm = p["comm"].as_str().unwrap();
            if !comm.starts_with(&tags().prefix) {
                continue;
            }
            let pid = p["pid"].as_i64().unwrap();
            assert!(
                self.reg.alive_during(pid, comm, t0, t1),
                "process {pid} ({comm}) was not alive during the scan ({:.1} ms): {p}\npid {pid}:{}",
                (t1 - t0).as_secs_f64() * 1e3,
                self.reg.history(pid, t0)
            );
            assert_eq!(
                u(&p["total_bytes"]),
                u(&p["rss_anon_bytes"]) + u(&p["shared_charged_bytes"]),
                "{p}"
            );
            if let (Some(pss), Some(uss)) = (p["pss_bytes"].as_u64(), p["uss_bytes"].as_u64()) {
                assert!(uss <= pss, "USS above PSS: {p}");
            }
        }
    }
}

#[test]
fn scans_survive_pid_reuse_sysv_churn_and_fd_passing() {
    let secs: u64 = std::env::var("SHMWHO_CHURN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let pg = page();
    let seg_pages = 64;
    let seg = SysvSeg::new(seg_pages * pg);
    let reg = Registry::default();
    let stop = AtomicBool::new(false);
    let reused = AtomicU64::new(0);
    let t = tags();
    let names = [t.reuse_a, t.reuse_b, t.pass_tx, t.pass_rx].map(|n| CString::new(n).unwrap());
    let sysv_name = CString::new(t.sysv).unwrap();
    let mut checker = Checker {
        reg: &reg,
        me: my_pid(),
        shmid: seg.shmid,
        seg_pages,
        last_seg_resident: 0,
        objects_seen: 0,
        holders_checked: 0,
    };
    let mut scans = [0u32; 5];
    let mut vanished = 0u64;
    // Checked once every child is registered: a child's pid is known to us only when its
    // setup is done, and a scan may see it before.
    let mut docs: Vec<(&[&str], Value, Instant, Instant)> = Vec::new();

    std::thread::scope(|s| {
        let (stop, reg, reused, names, sysv_name) = (&stop, &reg, &reused, &names, &sysv_name);
        let shmid = seg.shmid;
        s.spawn(move || reuse_loop(stop, reg, reused, names));
        s.spawn(move || {
            set_thread_name(sysv_name);
            sysv_loop(stop, reg, shmid, seg_pages)
        });
        s.spawn(move || pass_loop(stop, reg, names));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let deadline = Instant::now() + Duration::from_secs(secs);
            let runs: [&[&str]; 5] = [
                &["--json"],
                &["procs", "--json"],
                &["procs", "--json", "--pss"],
                &["--json", "--charge", "touched"],
                &["procs", "--json", "--charge", "split", "--pss"],
            ];
            let mut round = 0usize;
            // On a loaded host a scan can take seconds: run past the deadline until every
            // view ran and enough children lived (bounded, so a stuck scan still fails).
            let hard_stop = deadline + Duration::from_secs(300);
            while Instant::now() < deadline
                || (Instant::now() < hard_stop
                    && (scans.contains(&0) || reg.lives.lock().unwrap().len() < 20))
            {
                let k = round % runs.len();
                let args = runs[k];
                let t0 = Instant::now();
                let out = run_unlocked(args);
                let t1 = Instant::now();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(!stderr.contains("panicked"), "shmwho {args:?}: {stderr}");
                let doc = parse_ok(args, &out);
                assert_eq!(doc["schema"], 1);
                docs.push((args, doc, t0, t1));
                scans[k] += 1;
                round += 1;
            }
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    });
    for (args, doc, t0, t1) in &docs {
        if args[0] == "procs" {
            checker.procs_doc(doc, *t0, *t1);
            vanished += u_or0(&doc["vanished_processes"]);
        } else {
            checker.objects_doc(doc, *t0, *t1);
            vanished += u_or0(&doc["notes"]["vanished_processes"]);
        }
    }
    let lives = reg.lives.lock().unwrap().len();
    eprintln!(
        "scans {scans:?} (objects, procs, procs --pss, touched, split --pss); {lives} children; \
         {} pids reused on purpose; {} of our objects and {} holders checked; \
         {vanished} processes vanished mid-scan",
        reused.load(Ordering::Relaxed),
        checker.objects_seen,
        checker.holders_checked
    );
    assert!(scans.iter().all(|&n| n >= 1), "every view ran: {scans:?}");
    assert!(lives >= 20, "too few children ({lives})");
    drop(seg);
}

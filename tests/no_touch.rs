//! shmwho never faults in or reads an object's pages.
//!
//! Each object is half written: its other half is holes, and a read through a mapping of it
//! would allocate a page there (docs/facts.md #12), raising `st_blocks`. After every view (objects,
//! procs, `--pss`, `--charge touched`, `show`) has run on it, `st_blocks` must be unchanged, to
//! the byte. For file objects the access time is also checked (set far in the past first, so
//! any `read` would move it); for SysV segments the attach time and last attacher.
//!
//! The swap path (which maps objects read-only for `mincore`) runs only when swap is in use;
//! the views are also run over a procfs whose `meminfo` says so (a directory of links to the
//! real `/proc` with a doctored `meminfo`, passed with the hidden `--proc-root`). `mmap` sets
//! the access time, so only `st_blocks` is checked there.

mod common;

use common::*;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// An old access time: any read would replace it with the current time.
const OLD_ATIME: i64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Footprint {
    /// `st_blocks` × 512, or SysV `rss + swap`.
    bytes: u64,
    /// File access time, or SysV attach time (seconds).
    atime: i64,
    /// SysV: pid of the last shmat/shmdt; 0 for files.
    lpid: i32,
}

fn set_old_atime(fd: i32) {
    let times = [
        libc::timespec {
            tv_sec: OLD_ATIME as libc::time_t,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
    ];
    // SAFETY: plain syscall on our fd with a valid array of two timespecs.
    let rc = unsafe { libc::futimens(fd, times.as_ptr()) };
    assert_eq!(rc, 0, "futimens: {}", std::io::Error::last_os_error());
}

fn file_footprint(path: &Path) -> Footprint {
    let st = rustix::fs::stat(path).unwrap_or_else(|e| panic!("stat {path:?}: {e}"));
    Footprint {
        bytes: st.st_blocks as u64 * 512,
        atime: st.st_atime,
        lpid: 0,
    }
}

fn sysv_footprint(shmid: i32) -> Footprint {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    let row: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&shmid.to_string().as_str()))
        .unwrap_or_else(|| panic!("segment {shmid} not in /proc/sysvipc/shm"))
        .iter()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // SAFETY: shmid_ds is plain data, filled by the kernel.
    let ds = unsafe {
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        assert_eq!(libc::shmctl(shmid, libc::IPC_STAT, &mut ds), 0);
        ds
    };
    Footprint {
        bytes: row[14] + row[15],
        atime: ds.shm_atime,
        lpid: ds.shm_lpid,
    }
}

fn swap_in_use() -> bool {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    kb("SwapTotal:") > kb("SwapFree:")
}

/// A directory that looks like `/proc` (links to it) except for a `meminfo` that reports swap
/// in use, so the collector takes its swap path on every object.
struct SwapProcRoot {
    dir: tempfile::TempDir,
}

impl SwapProcRoot {
    fn new() -> SwapProcRoot {
        use std::os::unix::fs::symlink;
        let dir = tempfile::Builder::new()
            .prefix("shmwho-swapproc-")
            .tempdir()
            .unwrap();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = e.file_name();
            if name == "meminfo" {
                continue;
            }
            // `self` must keep resolving to the reader, so link the name, not its target.
            let _ = symlink(Path::new("/proc").join(&name), dir.path().join(&name));
        }
        let meminfo: String = std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .map(|l| {
                if l.starts_with("SwapTotal:") {
                    "SwapTotal:       1048576 kB\n".to_string()
                } else if l.starts_with("SwapFree:") {
                    "SwapFree:        1048572 kB\n".to_string()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(dir.path().join("meminfo"), meminfo).unwrap();
        SwapProcRoot { dir }
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

fn run_ok(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "shmwho {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The views over a procfs that says swap is in use: every object is mapped for `mincore`
/// (which sets its access time, so only `st_blocks` proves anything after these).
fn run_swap_views(swap_root: &SwapProcRoot) {
    for base in [
        &["--json"][..],
        &["procs", "--pss", "--json"],
        &["--charge", "touched"],
    ] {
        let mut args = base.to_vec();
        args.extend(["--proc-root", swap_root.path()]);
        run_ok(&args);
    }
}

/// `show` of each object: it maps objects read-only for `mincore` to list resident page
/// ranges (which sets the access time: only `st_blocks` proves anything after it).
fn run_show(ids: &[String]) {
    for id in ids {
        let out = run(&["show", id]);
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not built yet") {
            eprintln!("skipped: `shmwho show` ({})", err.trim());
            return;
        }
        assert!(
            out.status.success(),
            "shmwho show {id}: {:?}\n{err}",
            out.status
        );
    }
}

/// Every view but `show`, with swap not in use: none opens an object.
fn run_every_view() {
    let runs: Vec<Vec<String>> = [
        &[][..],
        &["--json"],
        &["--bytes", "--sort", "size"],
        &["--json", "--charge", "touched"],
        &["procs"],
        &["procs", "--pss"],
        &["procs", "--charge", "touched", "--json"],
        &["procs", "--charge", "split", "--by", "command"],
    ]
    .iter()
    .map(|a| a.iter().map(|s| s.to_string()).collect())
    .collect();
    for args in &runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&args);
    }
}

/// (kind, how to measure it, the JSON id, expected size and resident)
type Probe = (&'static str, Box<dyn Fn() -> Footprint>, String, u64, u64);

/// One test, not several: a scan with swap "in use" maps every object on the host, so it must
/// not run while another test of this file watches access times.
#[test]
fn no_view_touches_an_object() {
    let pg = page();
    let root = is_root();
    if !root {
        eprintln!("skipped in part: needs root (anonymous region through map_files, tmpfs mount)");
    }
    let mut probes: Vec<Probe> = Vec::new();

    // Anonymous shared: we map 64 pages and never touch them; a child that has exited wrote
    // pages 0..16 (orphaned: in no page table), a live child wrote 16..24. Its st_blocks is
    // read through our map_files link, which needs CAP_CHECKPOINT_RESTORE.
    let region = SharedRegion::new(64);
    let addr = region.addr();
    let mut live = None;
    if root {
        fork_child(&[&region], &[], After::Exit, move || {
            child::touch(addr, 0, 16, pg);
            0
        });
        live = Some(fork_child(&[&region], &[], After::Pause, move || {
            child::touch(addr, 16, 8, pg);
            0
        }));
        let map_files = PathBuf::from(format!(
            "/proc/self/map_files/{:x}-{:x}",
            addr,
            addr + region.len()
        ));
        probes.push((
            "anon_shared",
            Box::new(move || file_footprint(&map_files)),
            region.identity().1.to_string(),
            64 * pg,
            24 * pg,
        ));
    }

    // memfd held only as an fd: pages 0..10 of 20 written.
    let memfd = Memfd::new("shmwho-no-touch", 20 * pg);
    pwrite_pages(memfd.raw(), 0, 10);
    set_old_atime(memfd.raw());
    let path = PathBuf::from(format!("/proc/self/fd/{}", memfd.raw()));
    probes.push((
        "memfd",
        Box::new(move || file_footprint(&path)),
        memfd.identity().1.to_string(),
        20 * pg,
        10 * pg,
    ));

    // POSIX shm held by nobody: pages 3..9 of 12 written.
    let mut posix = PosixShm::new("-no-touch", 12 * pg);
    pwrite_pages(posix.raw(), 3, 6);
    set_old_atime(posix.raw());
    posix.close();
    let path = posix.path.clone();
    probes.push((
        "posix_shm",
        Box::new(move || file_footprint(&path)),
        posix.identity().1.to_string(),
        12 * pg,
        6 * pg,
    ));

    // SysV, nattch 0: a child attached, wrote pages 0..5 of 10 and exited.
    let seg = SysvSeg::new(10 * pg);
    let shmid = seg.shmid;
    fork_child(&[], &[], After::Exit, move || {
        let a = child::shmat(shmid, 4);
        child::touch(a, 0, 5, pg);
        0
    });
    probes.push((
        "sysv",
        Box::new(move || sysv_footprint(shmid)),
        format!("sysv:{shmid}"),
        10 * pg,
        5 * pg,
    ));

    // A tmpfs file held as an fd: pages 1..4 of 8 written.
    let mnt = root.then(|| TmpfsMount::new("1m"));
    let mut _tfd = None;
    if let Some(mnt) = &mnt {
        let tfd = mnt.create("half", 8 * pg);
        pwrite_pages(tfd.as_raw_fd(), 1, 3);
        set_old_atime(tfd.as_raw_fd());
        let path = mnt.path.join("half");
        probes.push((
            "tmpfs",
            Box::new(move || file_footprint(&path)),
            fd_identity(tfd.as_raw_fd()).1.to_string(),
            8 * pg,
            3 * pg,
        ));
        _tfd = Some(tfd);
    }

    let before: Vec<Footprint> = probes.iter().map(|p| (p.1)()).collect();
    for (p, b) in probes.iter().zip(&before) {
        assert_eq!(b.bytes, p.4, "{}: setup wrote what it meant to", p.0);
    }
    // shmwho sees each object as the test made it (else this proves nothing).
    let doc = objects_doc();
    for (what, _, id, size, resident) in &probes {
        let o = objects(&doc)
            .iter()
            .find(|o| o["id"] == id.as_str() && o["kind"] == *what)
            .unwrap_or_else(|| panic!("{what} {id} not listed"));
        assert_eq!(u(&o["size_bytes"]), *size, "{o}");
        assert_eq!(u(&o["resident_bytes"]), *resident, "{o}");
    }

    let swap_before = swap_in_use();
    run_every_view();
    // With swap really in use (another test's swap file, say), the views map objects for
    // mincore too, which sets access times: then only st_blocks proves anything.
    let check_atime = !swap_before && !swap_in_use();
    if !check_atime {
        eprintln!("swap is in use on this host: access times not checked");
    }
    let after: Vec<Footprint> = probes.iter().map(|p| (p.1)()).collect();
    for ((p, b), a) in probes.iter().zip(&before).zip(&after) {
        assert_eq!(
            a.bytes, b.bytes,
            "{}: shmwho changed the object's allocated bytes",
            p.0
        );
        assert_eq!(a.lpid, b.lpid, "{}: shmwho attached the segment", p.0);
        if check_atime && p.0 != "anon_shared" {
            // No fd to set the anonymous region's atime through; st_blocks is the proof.
            assert_eq!(
                a.atime, b.atime,
                "{}: shmwho read the object (access time moved)",
                p.0
            );
        }
    }

    let ids: Vec<String> = probes.iter().map(|p| p.2.clone()).collect();
    run_show(&ids);
    // Made now, so it links every process holding our objects.
    let swap_root = SwapProcRoot::new();
    run_swap_views(&swap_root);
    for (p, b) in probes.iter().zip(&before) {
        let a = (p.1)();
        assert_eq!(
            a.bytes, b.bytes,
            "{}: show or the swap path changed the object's allocated bytes",
            p.0
        );
        assert_eq!(a.lpid, b.lpid, "{}: shmwho attached the segment", p.0);
    }
    // Our own mapping of the anonymous region is still empty: nothing was read through it.
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let head = format!("{:x}-{:x} ", addr, addr + region.len());
    let rss = smaps
        .split_once(&head)
        .and_then(|(_, rest)| rest.lines().find(|l| l.starts_with("Rss:")))
        .expect("our mapping in smaps");
    assert_eq!(rss.split_whitespace().nth(1), Some("0"), "{rss}");
    drop(live);
}

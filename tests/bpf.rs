//! The fd scan through the BPF iterator (src/collect/bpf) against the walk of /proc/PID/fd it
//! replaces: the same objects, holders and figures, to the byte.

mod common;

use common::*;

/// As root on this kernel both iterators load: one lists an fd of ours on the shmem mount, the
/// other our command, start time and namespaces as /proc has them. The scan really takes the
/// BPF path (a silent fallback would leave it untested).
#[test]
fn iterators_load_and_see_us_as_proc_does() {
    if !require_root("loading a BPF iterator needs root") {
        return;
    }
    let m = Memfd::new(&format!("shmwho bpf probe {}", unique()), 3 * page());
    let (_, ino) = m.identity();
    let (found, task) = shmwho::collect::bpf::probe(std::process::id() as i32)
        .expect("the BPF iterators load and run on this kernel");
    assert!(
        found.iter().any(|&(fd, _, i)| fd == m.raw() && i == ino),
        "fd {} (inode {ino}) not in {found:?}",
        m.raw()
    );
    let stat = std::fs::read("/proc/self/stat").unwrap();
    let stat = shmwho::collect::stat::parse(&stat).unwrap();
    let ns = |n: &str| {
        let l = std::fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        let l = l.to_str().unwrap().to_string();
        l.split_once('[')
            .unwrap()
            .1
            .trim_end_matches(']')
            .parse::<u64>()
            .unwrap()
    };
    let (comm, start_ticks, ipc, mnt, _) = task.expect("our process is listed");
    assert_eq!(
        (comm, start_ticks, ipc, mnt),
        (
            stat.comm,
            stat.start_ticks,
            Some(ns("ipc")),
            Some(ns("mnt"))
        )
    );
}

/// Objects held only as fds (a memfd with a hostile name, a /dev/shm file), beside fds that are
/// no shared memory (a socket, a regular file): the scan with the iterator and the scan with
/// `SHMWHO_NO_BPF` (the /proc walk) report each object identically.
#[test]
fn fds_through_the_iterator_match_the_proc_walk() {
    if !require_root("loading a BPF iterator needs root") {
        return;
    }
    let pg = page();
    let me = my_pid();
    let m = Memfd::new(&format!("shmwho bpf (deleted)\nx {}", unique()), 5 * pg);
    pwrite_pages(m.raw(), 1, 2);
    let shm = PosixShm::new("-bpf", 4 * pg);
    pwrite_pages(shm.raw(), 0, 3);
    let _socket = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let _file = std::fs::File::open("/proc/self/exe").expect("a regular file");

    let with = json(&["--json"]);
    let without = without_bpf(&["--json"]);
    for (id, resident) in [(m.identity(), 2 * pg), (fd_identity(shm.raw()), 3 * pg)] {
        let a = find_inode(&with, &id).unwrap_or_else(|| panic!("{id:?} not listed with BPF"));
        let b =
            find_inode(&without, &id).unwrap_or_else(|| panic!("{id:?} not listed by the walk"));
        assert_eq!(a, b, "the two scans differ on {id:?}");
        assert_eq!(holders(a), vec![fd(me)]);
        assert_eq!(u(&a["resident_bytes"]), resident);
    }
}

/// The `task` iterator's walk of our mappings gives, for a memfd mapped shared (at an offset)
/// and privately, what our maps lines give: range, `s`/`p`, offset, device and inode.
#[test]
fn mappings_through_the_iterator_match_maps() {
    if !require_root("loading a BPF iterator needs root") {
        return;
    }
    let pg = page();
    let m = Memfd::new(&format!("shmwho bpf maps {}", unique()), 8 * pg);
    let (_, ino) = m.identity();
    let len = (3 * pg) as usize;
    let map = |flags, offset| {
        // SAFETY: a new mapping of our memfd, unmapped by the guard below.
        unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                flags,
                &m.fd,
                offset,
            )
        }
        .expect("mmap")
    };
    struct Unmap(Vec<*mut std::ffi::c_void>, usize);
    impl Drop for Unmap {
        fn drop(&mut self) {
            for &p in &self.0 {
                // SAFETY: mappings made above, of this length, unmapped once.
                let _ = unsafe { rustix::mm::munmap(p, self.1) };
            }
        }
    }
    let _guard = Unmap(
        vec![
            map(rustix::mm::MapFlags::SHARED, 2 * pg),
            map(rustix::mm::MapFlags::PRIVATE, 0),
        ],
        len,
    );
    let (_, task) = shmwho::collect::bpf::probe(std::process::id() as i32).expect("iterators run");
    let vmas = task
        .expect("our process")
        .4
        .expect("the walk of our mappings completed");
    let mut ours: Vec<_> = vmas.into_iter().filter(|v| v.5 == ino).collect();
    ours.sort();
    let text = std::fs::read("/proc/self/maps").unwrap();
    let mut want: Vec<_> = shmwho::collect::maps::parse(&text)
        .filter(|e| e.inode == ino && e.dev_major == 0)
        .map(|e| (e.start, e.end, e.shared, e.offset, e.dev(), e.inode))
        .collect();
    want.sort();
    assert_eq!(want.len(), 2, "{want:?}");
    assert_eq!(ours, want);
}

/// The BPF layout cache (src/collect/bpf/cache.rs) is root's alone, and one whose key is not
/// this boot's is ignored and replaced: a scan still takes the BPF path and reports what the
/// /proc walk reports.
#[test]
fn layout_cache_is_roots_and_a_foreign_one_is_replaced() {
    use std::os::unix::fs::MetadataExt as _;
    if !require_root("the cache is written only by a root scan") {
        return;
    }
    let _ = json(&["--json"]);
    let dir = std::fs::symlink_metadata("/run/shmwho").expect("a root scan made /run/shmwho");
    assert!(
        dir.is_dir() && dir.uid() == 0 && dir.mode() & 0o077 == 0,
        "{dir:?}"
    );
    let file = "/run/shmwho/bpf-layout";
    let md = std::fs::symlink_metadata(file).unwrap();
    assert!(
        md.is_file() && md.uid() == 0 && md.mode() & 0o077 == 0,
        "{md:?}"
    );
    let mine = std::fs::read_to_string(file).unwrap();
    assert!(mine.lines().count() > 10, "{mine}");
    // Another boot's answers (all wrong): ignored, and this boot's written back.
    let foreign: String = mine
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => "shmwho bpf layout 1 another-boot 1\n".to_string(),
            _ => format!("{} 1\n", l.rsplit_once(' ').unwrap().0),
        })
        .collect();
    std::fs::write(file, foreign).unwrap();
    let m = Memfd::new(&format!("shmwho bpf cache {}", unique()), 2 * page());
    pwrite_pages(m.raw(), 0, 1);
    let doc = json(&["--json"]);
    let o = find_inode(&doc, &m.identity()).expect("our memfd listed");
    assert_eq!(holders(o), vec![fd(my_pid())]);
    assert_eq!(std::fs::read_to_string(file).unwrap(), mine);
}

/// `--pss` of a process with no file mapping on a major-0 device comes from its
/// `smaps_rollup` (src/collect/body.rs): for a child with 300 private pages written, the USS
/// shmwho prints lies between the kernel's own `Private_*` of that file read just before and
/// just after the scan (pages the child shares copy-on-write with this test process only become
/// more its own meanwhile: no fork runs while the lock is held) and counts those pages. Its PSS
/// is at least the USS and at most the kernel's `Pss` after the scan (the scan's own process
/// shares the child's library pages while it runs, which lowers the child's share of them).
#[test]
fn pss_without_shared_mappings_comes_from_smaps_rollup() {
    if !require_root("loading a BPF iterator needs root") {
        return;
    }
    let pg = page();
    let n = 300u64;
    let kid = fork_child(&[], &[], After::Pause, move || {
        let p = child::private((n * pg) as usize, 3);
        child::touch(p, 0, n, pg);
        0
    });
    let pid = kid.pid();
    let (_, task) = shmwho::collect::bpf::probe(pid as i32).expect("iterators run");
    let listed = task.expect("the child is listed").4;
    assert_eq!(
        listed,
        Some(vec![]),
        "the child maps no file on a major-0 device"
    );

    // (Pss, Private_Clean + Private_Dirty) of the child, in bytes, as the kernel sums them.
    let rollup = || {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
        let kb = |key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().strip_suffix(" kB"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {text}"))
        };
        (
            kb("Pss:") * 1024,
            (kb("Private_Clean:") + kb("Private_Dirty:")) * 1024,
        )
    };
    let args = ["procs", "--pss", "--json", "-p", &pid.to_string()];
    let (before, doc, after) = {
        let _g = lock();
        let before = rollup();
        let out = run_unlocked(&args);
        (before, parse_ok(&args, &out), rollup())
    };
    let row = process(&doc, pid).expect("the child listed");
    let (pss, uss) = (u(&row["pss_bytes"]), u(&row["uss_bytes"]));
    assert!(
        before.1 <= uss && uss <= after.1,
        "USS {uss} outside {before:?}..{after:?}"
    );
    assert!(uss >= n * pg, "USS {uss} lacks the {n} pages written");
    assert!(
        uss <= pss && pss <= after.0,
        "PSS {pss}, USS {uss}, after {after:?}"
    );
}

/// A process of another user mapping a memfd (its parent is us): the objects view, which takes
/// uids and parents from the BPF `task` iterator instead of `status`, lists it with the same
/// user, owner and figures as the scan that reads `/proc` alone.
#[test]
fn another_users_holder_matches_the_proc_walk() {
    if !require_root("loading a BPF iterator needs root") {
        return;
    }
    let pg = page();
    let m = Memfd::new(&format!("shmwho bpf user {}", unique()), 4 * pg);
    pwrite_pages(m.raw(), 0, 2);
    let fd = m.raw();
    let kid = fork_child(&[], &[fd], After::Pause, move || {
        child::become_user(65534, 3);
        child::map(fd, (4 * pg) as usize, 4);
        0
    });
    let id = m.identity();
    let with = json(&["--json"]);
    let without = without_bpf(&["--json"]);
    let a = find_inode(&with, &id).expect("listed with BPF");
    let b = find_inode(&without, &id).expect("listed by the walk");
    assert_eq!(a, b, "the two scans differ");
    // The exporter names each process's user (the objects view shows none).
    let series = |no_bpf: bool| -> Vec<String> {
        let _g = lock();
        let mut c = cmd();
        if no_bpf {
            c.env("SHMWHO_NO_BPF", "1");
        }
        let out = c
            .args(["export", "--top", "100000", "--charge", "split"])
            .output()
            .expect("run shmwho export");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!("pid=\"{}\"", kid.pid())))
            .map(str::to_string)
            .collect()
    };
    let (with, without) = (series(false), series(true));
    assert!(!with.is_empty(), "the child has a series");
    assert_eq!(with, without);
    let nobody = users_name(65534);
    assert!(
        with.iter()
            .all(|l| l.contains(&format!("user=\"{nobody}\""))),
        "{with:?}"
    );
}

/// The JSON document of `shmwho ARGS` run with `SHMWHO_NO_BPF` (the `/proc` walk).
fn without_bpf(args: &[&str]) -> serde_json::Value {
    let _g = lock();
    let out = cmd()
        .env("SHMWHO_NO_BPF", "1")
        .args(args)
        .output()
        .expect("run shmwho");
    parse_ok(args, &out)
}

/// The name passwd gives `uid`, or the number.
fn users_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// A root without CAP_SYS_PTRACE may open another user's maps (and so read its mappings), but
/// not read its `ns` or fd links: the scan through the BPF iterators makes the access check the
/// walk of maps makes (an open of maps), so it reads the same processes and lists the same
/// objects; it calls unreadable only a process holding an fd on tmpfs it cannot name.
#[test]
fn root_without_ptrace_reads_what_the_proc_walk_reads() {
    if !require_root("drops CAP_SYS_PTRACE from a root shmwho with setpriv") {
        return;
    }
    let pg = page();
    let region = SharedRegion::new(8);
    let addr = region.addr();
    let kid = fork_child(&[&region], &[], After::Pause, move || {
        child::become_user(65534, 3);
        child::touch(addr, 0, 5, pg);
        0
    });
    // One that maps no shared memory: its access check is the only read of it.
    let idle = fork_child(&[], &[], After::Pause, || {
        child::become_user(65534, 3);
        0
    });
    // One that holds a memfd as an fd: its maps open, its fd links do not. The iterator knows
    // it holds an fd on tmpfs that cannot be named, and calls it unreadable; the walk of
    // `/proc/PID/fd` cannot tell such an fd from any other it may not read, and passes over
    // them all (else every process would be unreadable here, root's own shells too).
    let m = Memfd::new(&format!("shmwho bpf ptrace {}", unique()), 2 * pg);
    let fd = m.raw();
    let holder = fork_child(&[], &[fd], After::Pause, || {
        child::become_user(65534, 3);
        0
    });
    let scan = |no_bpf: bool| -> serde_json::Value {
        let _g = lock();
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--bounding-set",
            "-sys_ptrace",
            "--inh-caps",
            "-sys_ptrace",
            bin(),
            "--json",
        ]);
        if no_bpf {
            c.env("SHMWHO_NO_BPF", "1");
        }
        match c.output() {
            Ok(out) => parse_ok(&["--json"], &out),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("setpriv: {e}"),
            Err(e) => {
                skip(&format!("setpriv: {e}"));
                serde_json::Value::Null
            }
        }
    };
    // The iteration's fds are taken only for a process that started a clock tick (10 ms)
    // before it at least (`KernelSnapshot::fds_of`); a younger one has its fds walked.
    std::thread::sleep(std::time::Duration::from_millis(30));
    let (with, without) = (scan(false), scan(true));
    if with.is_null() {
        return;
    }
    let id = region.identity();
    for doc in [&with, &without] {
        let refused = doc["unreadable"].as_array().unwrap();
        for pid in [kid.pid(), idle.pid()] {
            assert!(
                !refused.iter().any(|p| p["pid"] == pid),
                "the maps of {pid} are readable: {refused:?}"
            );
        }
    }
    let refused = with["unreadable"].as_array().unwrap();
    assert!(
        refused.iter().any(|p| p["pid"] == holder.pid()),
        "the fd links of {} are not readable: {refused:?}",
        holder.pid()
    );
    let a = find_inode(&with, &id).expect("listed with BPF");
    assert_eq!(Some(a), find_inode(&without, &id), "the two scans differ");
    assert!(holders(a).contains(&map(kid.pid())), "{a}");
    assert_eq!(u(&a["resident_bytes"]), 5 * pg);
}

/// The `task` program sums each process's memory counters (`src/collect/bpf/tasks.rs`,
/// `sum_counters`) to what its `status` prints: a child idle after writing private and shared
/// pages, and this test process's parent (idle too). The child's 11 shared pages are fewer
/// than a counter's batch (32 on this machine: docs/facts.md 32), so they are still in a CPU's
/// part, not in the shared count: a sum without the parts gives 0 there. `procs` shows those
/// figures.
#[test]
fn memory_counters_from_the_iterator_are_what_status_prints() {
    if !require_root("loading a BPF iterator needs root") {
        return;
    }
    let pg = page();
    let region = SharedRegion::new(16);
    let addr = region.addr();
    let (private, shared) = (40u64, 11u64);
    let kid = fork_child(&[&region], &[], After::Pause, move || {
        let p = child::private((private * pg) as usize, 3);
        child::touch(p, 0, private, pg);
        child::touch(addr, 0, shared, pg);
        0
    });
    let pid = kid.pid() as i32;
    let parent = std::os::unix::process::parent_id() as i32;
    let status = |pid: i32| {
        let text = std::fs::read(format!("/proc/{pid}/status")).unwrap();
        shmwho::collect::status::parse(&text).unwrap()
    };
    let counted = shmwho::collect::bpf::probe_counters(&[pid, parent])
        .expect("the task program sums the counters on this kernel");
    for (&p, c) in [pid, parent].iter().zip(counted) {
        let c = c.unwrap_or_else(|| panic!("no counters summed for {p}"));
        let s = status(p);
        let figures = |s: &shmwho::collect::status::Status| {
            (s.vm_rss, s.rss_anon, s.rss_file, s.rss_shmem, s.vm_swap)
        };
        assert_eq!(figures(&c), figures(&s), "process {p}");
        assert_eq!((c.ppid, c.uid), (s.ppid, s.uid), "process {p}");
    }
    let s = status(pid);
    assert_eq!(s.rss_shmem, shared * pg, "the child's shared pages");
    assert!(s.rss_anon >= private * pg, "the child's private pages");

    let args = ["procs", "--json", "-p", &pid.to_string()];
    let doc = json(&args);
    let row = process(&doc, i64::from(pid)).expect("the child listed");
    assert_eq!(
        [
            u(&row["rss_bytes"]),
            u(&row["rss_anon_bytes"]),
            u(&row["rss_file_bytes"]),
            u(&row["rss_shmem_bytes"]),
            u(&row["swap_bytes"]),
        ],
        [
            s.vm_rss.unwrap(),
            s.rss_anon,
            s.rss_file,
            s.rss_shmem,
            s.vm_swap
        ]
    );
}

/// The sums stay right while a counter's per-CPU parts are folded into its count as they are
/// read: a process that writes 40 private pages and drops them again one by one, over and over
/// (each pass crosses the counter's batch of 32 both ways, so its parts go negative and are
/// folded every pass). Its
/// `RssAnon` stays between a base and the base plus those 40 pages, so every sum must lie
/// within what `status` shows of it, give or take a few pages of the process's own moves
/// between the reads of two CPUs' parts; a part counted twice, or not at all, is 32 pages or
/// more off. Most sums must come through (a sum that saw a fold is dropped, and `status` read).
#[test]
fn counters_summed_while_parts_are_folded_stay_within_what_status_shows() {
    if !require_root("loading a BPF iterator needs root") {
        return;
    }
    let pg = page();
    let n = 40u64;
    let len = (n * pg) as usize;
    let kid = fork_child(&[], &[], After::Pause, move || {
        // SAFETY: plain syscalls; this child has one thread, and the grandchild runs only raw
        // syscalls until it is killed with this child (its parent-death signal).
        unsafe {
            let me = libc::getpid();
            let g = libc::fork();
            if g == 0 {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                if libc::getppid() != me {
                    child::fail(4);
                }
                let p = child::private(len, 3);
                loop {
                    child::touch(p, 0, n, pg);
                    // Page by page: each drop of a page is an update of its own, so that a
                    // CPU's part goes below 0 (one call for all 40 would fold at once).
                    for i in 0..n as usize {
                        let page = (p + i * pg as usize) as *mut libc::c_void;
                        libc::madvise(page, pg as usize, libc::MADV_DONTNEED);
                    }
                }
            }
            i64::from(g)
        }
    });
    let pid = i32::try_from(kid.value).expect("a pid");
    assert!(pid > 0, "fork of the churning grandchild");
    let anon = || {
        let text = std::fs::read(format!("/proc/{pid}/status")).unwrap();
        shmwho::collect::status::parse(&text).unwrap().rss_anon
    };
    let mut shown: Vec<u64> = Vec::new();
    let mut summed: Vec<u64> = Vec::new();
    let mut none = 0;
    for _ in 0..100 {
        shown.push(anon());
        match shmwho::collect::bpf::probe_counters(&[pid]).expect("the program sums")[0] {
            Some(ref s) => summed.push(s.rss_anon),
            None => none += 1,
        }
    }
    shown.push(anon());
    let (lo, hi) = (*shown.iter().min().unwrap(), *shown.iter().max().unwrap());
    assert!(hi > lo, "the grandchild churns: {shown:?}");
    let slack = 4 * pg;
    let (floor, ceiling) = (
        (hi + slack).saturating_sub(n * pg + 2 * slack),
        lo + n * pg + slack,
    );
    assert!(
        summed.len() >= 50,
        "{none} of 100 iterations summed nothing"
    );
    for s in &summed {
        assert!(
            (floor..=ceiling).contains(s),
            "sum {s} outside {floor}..={ceiling} (status showed {lo}..={hi})"
        );
    }
}

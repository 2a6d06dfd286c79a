//! Scans while processes come and go: children map shared memory, write a few pages and exit
//! while `shmwho` reads `/proc`. Every run must succeed with a consistent document.

mod common;

use common::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn i(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected an integer, got {v}"))
}

/// The command our children run under: unique to this run (another run of this test on the
/// host has children of its own), and within the 15 bytes of a comm.
fn racer() -> String {
    format!("racer{}", std::process::id())
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The coarsest page an object of each kind may be allocated in: shmem THP (PMD size) for
/// files and anonymous shared memory, hugetlb pages for SysV (SHM_HUGETLB).
fn granules() -> (u64, u64) {
    let pg = page();
    let pmd = read_u64("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size").unwrap_or(pg);
    let hugetlb = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let n = e.file_name().into_string().ok()?;
                    let kb: u64 = n
                        .strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()?;
                    Some(kb * 1024)
                })
                .max()
                .unwrap_or(pg)
        })
        .unwrap_or(pg);
    (pg.max(pmd), pg.max(pmd).max(hugetlb))
}

fn round_up(v: u64, g: u64) -> u64 {
    v.div_ceil(g) * g
}

/// Checks the document; returns how many objects a child of ours held at the time.
fn check_objects_doc(doc: &Value, my_comm: &str, granule: (u64, u64)) -> usize {
    let seen = objects(doc)
        .iter()
        .filter(|o| {
            o["holders"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["comm"] == my_comm)
        })
        .count();
    assert_eq!(
        i(&doc["explained_bytes"]) + i(&doc["unexplained_bytes"]),
        i(&doc["meminfo_shmem_bytes"])
    );
    let mut sum = 0;
    let mut unowned = 0;
    for o in objects(doc) {
        let (size, res, swap) = (
            u(&o["size_bytes"]),
            u(&o["resident_bytes"]),
            u(&o["swap_bytes"]),
        );
        if !is_hugetlb(o) {
            sum += res;
        }
        let kind = o["kind"].as_str().unwrap();
        // Files (memfd, tmpfs, /dev/shm) may hold blocks past EOF (fallocate KEEP_SIZE), so the
        // size bound is only a law for anonymous shared memory, SysV, and our own objects.
        let ours = !holders(o).is_empty()
            && o["holders"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["comm"] == my_comm);
        let g = if kind == "sysv" { granule.1 } else { granule.0 };
        if matches!(kind, "anon_shared" | "sysv") || ours {
            assert!(
                res + swap <= round_up(size, g),
                "resident {res} + swap {swap} > size {size} rounded to {g}: {o}"
            );
        }
        let charged: u64 = o["charges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| u(&c["bytes"]))
            .sum();
        if o["owner"].is_null() {
            assert!(charges(o).is_empty(), "{o}");
            unowned += res;
        } else {
            assert_eq!(charged, res, "charges sum to resident: {o}");
        }
        if holders(o).is_empty() {
            assert!(
                o["owner"].is_null() || o["kind"] == "sysv",
                "only a SysV creator owns what nobody holds: {o}"
            );
        }
    }
    assert_eq!(u(&doc["objects_resident_bytes"]), sum);
    assert_eq!(u(&doc["unheld_bytes"]), unowned);
    seen
}

fn check_procs_doc(doc: &Value) {
    assert_eq!(
        u(&doc["charged_bytes"]) + u(&doc["unheld_bytes"]),
        u(&doc["objects_resident_bytes"]),
        "conservation"
    );
    for p in doc["processes"].as_array().unwrap() {
        assert_eq!(
            u(&p["total_bytes"]),
            u(&p["rss_anon_bytes"]) + u(&p["shared_charged_bytes"]),
            "{p}"
        );
    }
}

/// One short-lived child. Kinds rotate: inheriting our region, its own anonymous region, a SysV
/// segment removed while attached, a memfd.
fn churn_once(n: u64, region: &SharedRegion) {
    let pg = page();
    let pages = 1 + n % 13;
    // Lifetimes of 0-40 ms after writing, so scans catch some children mid-life.
    let linger = libc::timespec {
        tv_sec: 0,
        tv_nsec: ((n / 4) % 5) as libc::c_long * 10_000_000,
    };
    match n % 4 {
        0 => {
            let addr = region.addr();
            let first = n % 50;
            fork_child(&[region], &[], After::Exit, move || {
                child::touch(addr, first, pages, pg);
                child::sleep(&linger);
                0
            });
        }
        1 => {
            fork_child(&[], &[], After::Exit, move || {
                let addr = child::map(-1, ((pages + 3) * pg) as usize, 5);
                child::touch(addr, 0, pages, pg);
                child::sleep(&linger);
                0
            });
        }
        2 => {
            fork_child(&[], &[], After::Exit, move || {
                // SAFETY (child): raw syscalls only; removed at once, so it dies with us.
                unsafe {
                    let id = libc::shmget(libc::IPC_PRIVATE, (pages * pg) as usize, 0o600);
                    if id < 0 {
                        child::fail(3);
                    }
                    let addr = child::shmat(id, 4);
                    libc::shmctl(id, libc::IPC_RMID, core::ptr::null_mut());
                    child::touch(addr, 0, pages, pg);
                }
                child::sleep(&linger);
                0
            });
        }
        _ => {
            fork_child(&[], &[], After::Exit, move || {
                // SAFETY (child): raw syscalls only.
                unsafe {
                    let fd = libc::memfd_create(c"shmwho-race".as_ptr(), libc::MFD_CLOEXEC);
                    if fd < 0 || libc::ftruncate(fd, ((pages + 1) * pg) as libc::off_t) < 0 {
                        child::fail(3);
                    }
                    let addr = child::map(fd, ((pages + 1) * pg) as usize, 5);
                    child::touch(addr, 1, pages, pg);
                }
                child::sleep(&linger);
                0
            });
        }
    }
}

#[test]
fn scans_survive_processes_coming_and_going() {
    let deadline = Instant::now() + Duration::from_secs(5);
    let stop = AtomicBool::new(false);
    let forks = AtomicU64::new(0);
    let region = SharedRegion::new(64);
    let racer = racer();
    let my_comm = racer.as_str();
    let granule = granules();
    let (mut objects_runs, mut procs_runs, mut caught, mut vanished) = (0u32, 0u32, 0usize, 0u64);

    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (stop, forks, region) = (&stop, &forks, &region);
            // Children take the forking thread's name as their comm: that is how a scan's
            // holders are recognized as ours.
            std::thread::Builder::new()
                .name(racer.clone())
                .spawn_scoped(s, move || {
                    let mut n = t;
                    while !stop.load(Ordering::Relaxed) && n < 40_000 {
                        churn_once(n, region);
                        forks.fetch_add(1, Ordering::Relaxed);
                        n += 2;
                    }
                })
                .unwrap();
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut round = 0u32;
            // On a loaded host a scan can take seconds: run past the deadline until enough
            // scans and children were seen (bounded, so a stuck scan still fails).
            let hard_stop = deadline + Duration::from_secs(300);
            let enough = |o: u32, p: u32| o >= 3 && p >= 3 && forks.load(Ordering::Relaxed) >= 20;
            while (Instant::now() < deadline
                || (Instant::now() < hard_stop && !enough(objects_runs, procs_runs)))
                && round < 500
            {
                round += 1;
                let mut runs: Vec<Vec<&str>> = vec![vec!["--json"], vec!["procs", "--json"]];
                if round.is_multiple_of(3) {
                    runs.push(vec!["procs", "--json", "--charge", "touched"]);
                    runs.push(vec!["--json", "--charge", "split"]);
                }
                for args in runs {
                    let out = run_unlocked(&args);
                    let doc = parse_ok(&args, &out);
                    assert_eq!(doc["schema"], 1);
                    if args[0] == "procs" {
                        check_procs_doc(&doc);
                        procs_runs += 1;
                    } else {
                        caught += check_objects_doc(&doc, my_comm, granule);
                        vanished += u(&doc["notes"]["vanished_processes"]);
                        objects_runs += 1;
                    }
                }
            }
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    });
    let forks = forks.load(Ordering::Relaxed);
    eprintln!(
        "{objects_runs} objects scans, {procs_runs} procs scans, {forks} children; \
         {caught} objects seen held by a child, {vanished} processes vanished mid-scan"
    );
    assert!(objects_runs >= 3 && procs_runs >= 3, "too few scans");
    assert!(forks >= 20, "too few children ({forks})");
}

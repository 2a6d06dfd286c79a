//! The procs view and the charging policies against real objects: conservation under every
//! policy, and the exact share each of our processes gets.

mod common;

use common::fd as fd_holder;
use common::*;
use serde_json::Value;

/// An anonymous shared region of `n` pages that the test process maps and never touches;
/// child 1 writes its first `a` pages, child 2 its first `b` (b > a). Plus objects nobody holds
/// (a POSIX shm file, a SysV segment whose creator exited), so `unheld_bytes` is not zero.
struct Scenario {
    n: u64,
    a: u64,
    b: u64,
    id: (String, u64),
    c1: Child,
    c2: Child,
    _region: SharedRegion,
    _shm: PosixShm,
    _seg: SysvSeg,
}

impl Scenario {
    fn new(n: u64, a: u64, b: u64) -> Scenario {
        assert!(a < b && b <= n);
        let pg = page();
        let region = SharedRegion::new(n);
        let addr = region.addr();
        let c1 = fork_child(&[&region], &[], After::Pause, move || {
            child::touch(addr, 0, a, pg);
            0
        });
        let c2 = fork_child(&[&region], &[], After::Pause, move || {
            child::touch(addr, 0, b, pg);
            0
        });
        let mut shm = PosixShm::new("", 9 * pg);
        pwrite_pages(shm.raw(), 2, 3);
        shm.close();
        let c = fork_child(&[], &[], After::Exit, move || {
            // SAFETY (child): raw syscalls only.
            let id = unsafe { libc::shmget(libc::IPC_PRIVATE, (8 * pg) as usize, 0o600) };
            if id < 0 {
                child::fail(3);
            }
            child::touch(child::shmat(id, 4), 1, 4, pg);
            id as i64
        });
        let seg = SysvSeg::adopt(c.value as i32).expect("segment");
        Scenario {
            n,
            a,
            b,
            id: region.identity(),
            c1,
            c2,
            _region: region,
            _shm: shm,
            _seg: seg,
        }
    }

    fn pids(&self) -> [i64; 3] {
        [my_pid(), self.c1.pid(), self.c2.pid()]
    }
}

fn procs(policy: &str, s: &Scenario, extra: &[&str]) -> Value {
    let [me, p1, p2] = s.pids();
    let (me, p1, p2) = (me.to_string(), p1.to_string(), p2.to_string());
    let mut args = vec![
        "procs", "--json", "--charge", policy, "--pid", &me, "--pid", &p1, "--pid", &p2,
    ];
    args.extend_from_slice(extra);
    json(&args)
}

fn row(doc: &Value, pid: i64) -> &Value {
    process(doc, pid).unwrap_or_else(|| panic!("pid {pid} not in procs output"))
}

#[test]
fn charges_add_up_under_every_policy() {
    if !require_root("anonymous shared memory is measured through map_files") {
        return;
    }
    let pg = page();
    let s = Scenario::new(1201, 37, 650);
    let [me, p1, p2] = s.pids();
    let resident = s.b * pg;

    for policy in ["owner", "split", "touched"] {
        let doc = procs(policy, &s, &[]);
        assert_eq!(doc["charge"], policy);
        assert_eq!(
            u(&doc["charged_bytes"]) + u(&doc["unheld_bytes"]),
            u(&doc["objects_resident_bytes"]),
            "conservation under {policy}"
        );
        assert!(
            u(&doc["unheld_bytes"]) >= 7 * pg,
            "our unheld objects count"
        );
        let rows = doc["processes"].as_array().unwrap();
        assert_eq!(rows.len(), 3, "--pid narrows the rows to our processes");
        for r in rows {
            assert_eq!(
                u(&r["total_bytes"]),
                u(&r["rss_anon_bytes"]) + u(&r["shared_charged_bytes"]),
                "TOTAL = ANON + SHARED"
            );
        }
        let (r1, r2) = (row(&doc, p1), row(&doc, p2));
        assert_eq!(r1["ppid"], me);
        assert_eq!(r2["ppid"], me);
        // RssShmem: the pages each child has in its page tables (the children map nothing else).
        assert_eq!(u(&r1["rss_shmem_bytes"]), s.a * pg);
        assert_eq!(u(&r2["rss_shmem_bytes"]), s.b * pg);
        let (c1, c2) = (
            u(&r1["shared_charged_bytes"]),
            u(&r2["shared_charged_bytes"]),
        );
        let mine = u(&row(&doc, me)["shared_charged_bytes"]);
        match policy {
            "owner" => {
                assert_eq!((c1, c2), (0, 0), "children own nothing");
                assert!(mine >= resident, "owner {mine} < {resident}");
            }
            "split" => {
                let third = resident / 3;
                for (who, got) in [("child 1", c1), ("child 2", c2)] {
                    assert!(
                        got.abs_diff(third) <= 1,
                        "{who} got {got}, a third of {resident} is {third}"
                    );
                }
                assert!(mine + 1 >= third);
            }
            "touched" => {
                // PSS: the first a pages are mapped by both children, the rest of b by child 2.
                assert_eq!(c1, s.a * pg / 2);
                assert_eq!(c2, s.a * pg / 2 + (s.b - s.a) * pg);
            }
            _ => unreachable!(),
        }
    }
    let _ = s.n;
}

/// The charges of our object in the objects view (hidden `--charge`), checked for every policy.
fn object_charges(policy: &str) {
    if !require_root("anonymous shared memory is measured through map_files") {
        return;
    }
    let pg = page();
    let s = Scenario::new(503, 29, 233);
    let [me, p1, p2] = s.pids();
    let resident = s.b * pg;
    let doc = json(&["--json", "--charge", policy]);
    let o = find_inode(&doc, &s.id).expect("listed");
    assert_eq!(u(&o["resident_bytes"]), resident);
    let all: u64 = o["charges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| u(&c["bytes"]))
        .sum();
    assert_eq!(
        all, resident,
        "charges of a held object sum to its resident"
    );
    let c = charges(o);
    match policy {
        "owner" => assert_eq!(c, vec![(me, resident)]),
        "split" => {
            assert_eq!(c.len(), 3);
            for (pid, bytes) in &c {
                assert!([me, p1, p2].contains(pid));
                assert!(bytes.abs_diff(resident / 3) <= 1, "{c:?}");
            }
        }
        "touched" => assert_eq!(
            c,
            vec![(p1, s.a * pg / 2), (p2, s.a * pg / 2 + (s.b - s.a) * pg)],
            "the parent never touched it, so it is charged nothing"
        ),
        _ => unreachable!(),
    }
}

#[test]
fn object_charges_under_owner() {
    object_charges("owner");
}

#[test]
fn object_charges_under_split() {
    object_charges("split");
}

/// Must agree with `procs --charge touched` (see `charges_add_up_under_every_policy`).
#[test]
fn object_charges_under_touched() {
    object_charges("touched");
}

/// `--pss` adds PSS and USS; USS leaves out shared-memory pages even where the kernel calls
/// them private (child 2 is the only mapper of pages a..b: Private_Dirty, yet not its own).
#[test]
fn pss_and_uss() {
    if !require_root("anonymous shared memory is measured through map_files") {
        return;
    }
    let pg = page();
    let s = Scenario::new(977, 41, 801);
    let [_, p1, p2] = s.pids();
    let doc = procs("owner", &s, &["--pss"]);
    assert_eq!(doc["pss"], true);
    let (r1, r2) = (row(&doc, p1), row(&doc, p2));
    for r in [r1, r2] {
        assert!(r["pss_bytes"].is_u64() && r["uss_bytes"].is_u64(), "{r}");
    }
    assert!(u(&r1["pss_bytes"]) >= s.a * pg / 2);
    assert!(u(&r2["pss_bytes"]) >= s.a * pg / 2 + (s.b - s.a) * pg);
    assert!(
        u(&r2["uss_bytes"]) < (s.b - s.a) * pg,
        "USS {} counts shared-memory pages mapped once",
        u(&r2["uss_bytes"])
    );
    // `touched` needs each mapping's PSS and reads smaps; `owner` needs only the totals, which
    // a process with many mappings and few shmem pages gives through smaps_rollup and pagemap
    // (`collect::body::by_rollup`): the same USS either way.
    let touched = procs("touched", &s, &["--pss"]);
    for p in [p1, p2] {
        assert_eq!(row(&doc, p)["uss_bytes"], row(&touched, p)["uss_bytes"]);
    }
    // Without --pss the fields are absent.
    let plain = procs("owner", &s, &[]);
    assert_eq!(plain["pss"], false);
    assert!(row(&plain, p1).get("pss_bytes").is_none());
}

/// A process holding one object through an fd and two mappings is one holder: `split` divides
/// by processes, not by handles.
#[test]
fn split_counts_each_process_once() {
    let pg = page();
    let (n, k) = (40u64, 31u64);
    let m = Memfd::new(&format!("shmwho split {}", unique()), n * pg);
    let fd = m.raw();
    let c = fork_child(&[], &[fd], After::Pause, move || {
        let len = (n * pg) as usize;
        let a = child::map(fd, len, 5);
        let b = child::map_and_close(fd, len, 6);
        child::touch(a, 0, k, pg);
        child::touch(b, 0, k, pg); // the same pages again, through the second mapping
        0
    });
    let me = my_pid();
    let doc = json(&["--json", "--charge", "split"]);
    let o = find_inode(&doc, &m.identity()).expect("listed");
    assert_eq!(u(&o["resident_bytes"]), k * pg);
    // Sorted: after the pid numbers wrap around, the child's may be the lower.
    assert_eq!(
        holders(o),
        sorted(vec![fd_holder(me), map(c.pid()), map(c.pid())])
    );
    let ch = charges(o);
    assert_eq!(ch.len(), 2, "{ch:?}");
    for (pid, bytes) in &ch {
        assert!([me, c.pid()].contains(pid));
        assert!(bytes.abs_diff(k * pg / 2) <= 1, "{ch:?}");
    }
}

/// The `kB` figures of `/proc/PID/smaps_rollup` named `keys`, summed.
fn rollup_kb(pid: i64, keys: &[&str]) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    text.lines()
        .filter(|l| keys.contains(&l.split(':').next().unwrap_or_default()))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Workers that map all of their pool's region (as PHP-FPM's workers map their opcache) get
/// their PSS and USS counted from pagemap and kpagecount (`collect::pss`), not from a walk of
/// their page tables: the figures smaps_rollup gives, to the kB. (smaps' figures, summed over
/// ~36 mappings each rounded down to the kB, fall short of it by several kB; that the counting
/// is chosen for such a worker, and its figures to the byte, are checked in `collect::pss` and
/// `collect::body`.)
///
/// The pool runs from a copy of the binary and of its libraries: the scanning shmwho maps its
/// own binary and libraries, adding itself to their pages' mapcounts while it reads them, where
/// smaps_rollup read from here afterwards does not (on a quiet machine, where few processes map
/// libm, the workers' PSS read 2 kB less). The loader and the vDSO are still everyone's, whose
/// many mappers move a PSS by bytes: a kB either way is allowed.
#[test]
fn pss_of_pool_workers_is_the_rollups() {
    if !require_root("PSS is counted from page frame numbers") {
        return;
    }
    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = Dir(std::env::temp_dir().join(format!("shmwho-pss-pool-{}", unique())));
    std::fs::create_dir(&dir.0).unwrap();
    let copy = dir.0.join("shmwho");
    std::fs::copy(bin(), &copy).expect("copy the binary");
    let ldd = std::process::Command::new("ldd").arg(bin()).output();
    let ldd = String::from_utf8(ldd.expect("ldd (libc-bin)").stdout).unwrap();
    for lib in ldd.lines().filter_map(|l| l.split("=> ").nth(1)) {
        let lib = std::path::Path::new(lib.split_whitespace().next().unwrap());
        std::fs::copy(lib, dir.0.join(lib.file_name().unwrap())).expect("copy a library");
    }
    let libs = dir.0.to_str().unwrap();
    let lab = Spawned::start_from(
        &copy,
        &[("LD_LIBRARY_PATH", libs)],
        &[
            "lab",
            "pool",
            "--workers",
            "3",
            "--shared",
            "32M",
            "--json",
            "--for",
            "120",
        ],
    );
    let workers: Vec<i64> = lab.json()["worker_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    let list = workers
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut last = String::new();
    // A worker may still fault a page after the pool printed: retry until they agree.
    for _ in 0..5 {
        let doc = json(&["procs", "--pss", "--json", "--pid", &list]);
        let got: Vec<(u64, u64)> = workers
            .iter()
            .map(|&w| {
                let r = row(&doc, w);
                (u(&r["pss_bytes"]) / 1024, u(&r["uss_bytes"]) / 1024)
            })
            .collect();
        let want: Vec<(u64, u64)> = workers
            .iter()
            .map(|&w| {
                (
                    rollup_kb(w, &["Pss"]),
                    rollup_kb(w, &["Private_Clean", "Private_Dirty"]),
                )
            })
            .collect();
        let near = got
            .iter()
            .zip(&want)
            .all(|(g, w)| g.1 == w.1 && g.0.abs_diff(w.0) <= 1);
        if near {
            // Each worker's share of the region: 32 MiB over the master and 3 workers.
            assert!(got.iter().all(|&(pss, _)| pss >= (32 << 10) / 4), "{got:?}");
            return;
        }
        last = format!("(pss kB, uss kB): shmwho {got:?}, smaps_rollup {want:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("{last}");
}

//! `shmwho procs --exact`: distinct physical pages per group, checked against the pool's own
//! pagemap read here, independently of shmwho's code.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;

const PRESENT: u64 = 1 << 63;
const FILE: u64 = 1 << 61;
const PFN: u64 = (1 << 55) - 1;

/// The shared zero page's frame: a private page that was only read maps it.
fn zero_pfn() -> u64 {
    let pg = page() as usize;
    // SAFETY: a fresh private anonymous mapping, read once through a volatile read inside it,
    // then unmapped.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            pg,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::read_volatile(p as *const u8);
        let e = entries(std::process::id() as i64, p as u64, p as u64 + pg as u64)[0];
        libc::munmap(p, pg);
        e & PFN
    }
}

fn entries(pid: i64, start: u64, end: u64) -> Vec<u64> {
    let f = std::fs::File::open(format!("/proc/{pid}/pagemap")).expect("pagemap");
    let n = ((end - start) / page()) as usize;
    let mut buf = vec![0u8; n * 8];
    f.read_exact_at(&mut buf, start / page() * 8)
        .expect("read pagemap");
    buf.chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

/// (anonymous, file) page frames of `pid` outside shared-memory objects and kernel mappings.
fn phys(pid: i64, zero: u64) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let (mut anon, mut file) = (BTreeSet::new(), BTreeSet::new());
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let path = f.get(5..).map(|p| p.join(" ")).unwrap_or_default();
        let object = path.starts_with("/dev/zero")
            || path.starts_with("/memfd:")
            || path.starts_with("/SYSV")
            || path.starts_with("/dev/shm/")
            || path == "[anon_shmem]";
        let kernel = matches!(
            path.as_str(),
            "[vvar]" | "[vvar_vclock]" | "[vsyscall]" | "[vdso]" | "[uprobes]"
        );
        if object || kernel {
            continue;
        }
        let (s, e) = f[0].split_once('-').unwrap();
        let (s, e) = (
            u64::from_str_radix(s, 16).unwrap(),
            u64::from_str_radix(e, 16).unwrap(),
        );
        for x in entries(pid, s, e) {
            if x & PRESENT == 0 || x & PFN == zero {
                continue;
            }
            if x & FILE != 0 {
                file.insert(x & PFN);
            } else {
                anon.insert(x & PFN);
            }
        }
    }
    (anon, file)
}

fn group(doc: &Value, pid: i64) -> Option<Value> {
    doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["pid"] == pid)
        .cloned()
}

#[test]
fn pool_tree_counts_distinct_pages() {
    if !require_root("reads physical page numbers") {
        return;
    }
    let lab = Spawned::start(&[
        "lab",
        "pool",
        "--workers",
        "3",
        "--shared",
        "8M",
        "--json",
        "--for",
        "120",
    ]);
    let truth = lab.json();
    let master = truth["master_pid"].as_i64().unwrap();
    let mut pool: Vec<i64> = vec![master];
    pool.extend(
        truth["worker_pids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_i64().unwrap()),
    );
    let zero = zero_pfn();
    let mut last = String::new();
    // The master may still fault a page or two after it printed: retry until two reads agree.
    for _ in 0..5 {
        let doc = json(&["procs", "--by", "tree", "--exact", "--json"]);
        let g = group(&doc, master).expect("the pool's tree");
        let (mut anon, mut file) = (BTreeSet::new(), BTreeSet::new());
        for &pid in &pool {
            let (a, f) = phys(pid, zero);
            anon.extend(a);
            file.extend(f);
        }
        let pages = (anon.len() + file.len()) as u64;
        let charged = u(&g["shared_charged_bytes"]);
        assert_eq!(u(&g["processes"]), pool.len() as u64);
        assert_eq!(g["comm"], "shmwho");
        // Owner policy: the 8 MiB region is the master's, so the tree's.
        assert_eq!(charged, 8 << 20);
        let unique = u(&g["unique_bytes"]);
        let freed = u(&g["freed_if_gone_bytes"]);
        // Nothing outside the pool maps its anonymous pages or its region.
        assert!(
            freed >= anon.len() as u64 * page() + (8 << 20),
            "freed {freed} < anon {} pages + region",
            anon.len()
        );
        assert!(freed <= unique, "freed {freed} > unique {unique}");
        if unique == pages * page() + charged {
            return;
        }
        last = format!(
            "unique {unique} != {pages} pages ({} anon, {} file) x {} + {charged}",
            anon.len(),
            file.len(),
            page()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("{last}");
}

#[test]
fn tree_table_names_the_root() {
    if !require_root("reads physical page numbers") {
        return;
    }
    let lab = Spawned::start(&[
        "lab",
        "pool",
        "--workers",
        "2",
        "--shared",
        "4M",
        "--json",
        "--for",
        "120",
    ]);
    let master = lab.json()["master_pid"].as_i64().unwrap();
    let out = run(&["procs", "--by", "tree", "--exact", "--sort", "pid"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap();
    for col in ["PID", "PROCS", "COMMAND", "UNIQUE", "FREED-IF-GONE"] {
        assert!(header.contains(col), "{header}");
    }
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&master.to_string()))
        .unwrap_or_else(|| panic!("no row for {master}:\n{text}"));
    let f: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(f[1], "3", "{row}");
    assert_eq!(f[3], "shmwho", "{row}");
    assert!(text.contains("FREED-IF-GONE = "), "{text}");
}

#[test]
fn exact_without_cap_sys_admin_says_why() {
    let out = if is_root() {
        let _g = lock();
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin())
            .args(["procs", "--by", "tree", "--exact"])
            .current_dir("/")
            .output()
            .expect("setpriv")
    } else {
        run(&["procs", "--by", "tree", "--exact"])
    };
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
    assert!(out.stdout.is_empty());
}

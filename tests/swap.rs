//! Swap and huge pages: resident and swapped each right in the objects view, `show` and
//! `procs`, checked page by page against the kernel's own page-cache view (`cachestat` on one
//! page at a time). Needs root; skips with the reason when the machine will not swap or give
//! huge pages.
//!
//! Both tests change host-wide settings for a moment (a swap file; shmem_enabled set to
//! `advise`, which affects only mappings that ask for huge pages) and restore them in guards.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::CString;
use std::os::fd::AsRawFd;

type Runs = Vec<(u64, u64)>;

fn runs(v: &Value) -> Runs {
    v.as_array()
        .unwrap_or_else(|| panic!("expected page ranges, got {v}"))
        .iter()
        .map(|r| (u(&r[0]), u(&r[1])))
        .collect()
}

fn runs_of(pages: impl IntoIterator<Item = u64>) -> Runs {
    let mut out: Runs = Vec::new();
    for x in pages {
        match out.last_mut() {
            Some(last) if last.0 + last.1 == x => last.1 += 1,
            _ => out.push((x, 1)),
        }
    }
    out
}

/// A swap file on this (ext4) file system: swapoff and deleted on drop.
/// `cachestat` on one page: Some(true) in RAM, Some(false) a swap entry, None a hole.
fn page_state(fd: i32, page_no: u64) -> Result<Option<bool>, String> {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        cache: u64,
        dirty: u64,
        writeback: u64,
        evicted: u64,
        recently_evicted: u64,
    }
    let r = Range {
        off: page_no * page(),
        len: page(),
    };
    let mut st = Stat::default();
    // SAFETY: cachestat (451) reads `r` and writes `st`, both live repr(C) values.
    let rc = unsafe { libc::syscall(451, fd, &r as *const Range, &mut st as *mut Stat, 0u32) };
    if rc != 0 {
        return Err(format!("cachestat: {}", std::io::Error::last_os_error()));
    }
    Ok(match (st.cache, st.evicted) {
        (1, _) => Some(true),
        (0, 1) => Some(false),
        _ => None,
    })
}

/// (resident runs, swapped runs) of the first `pages` pages, one cachestat per page.
fn truth(fd: i32, pages: u64) -> Result<(Runs, Runs), String> {
    let mut res = Vec::new();
    let mut swp = Vec::new();
    for p in 0..pages {
        match page_state(fd, p)? {
            Some(true) => res.push(p),
            Some(false) => swp.push(p),
            None => {}
        }
    }
    Ok((runs_of(res), runs_of(swp)))
}

fn find(doc: &Value, pred: impl Fn(&Value) -> bool) -> &Value {
    objects(doc)
        .iter()
        .find(|o| pred(o))
        .expect("object listed")
}

/// Checks one object in all three views against the truth; `proc` is its only holder.
fn check_views(id: &str, obj_pred: impl Fn(&Value) -> bool, proc: i64, res: &Runs, swp: &Runs) {
    let pg = page();
    let npages = |r: &Runs| r.iter().map(|x| x.1).sum::<u64>();
    let doc = json(&["show", id, "--json"]);
    assert_eq!(&runs(&doc["resident_ranges"]), res, "show resident");
    assert_eq!(&runs(&doc["swapped_ranges"]), swp, "show swapped");
    let objs = objects_doc();
    let o = find(&objs, &obj_pred);
    assert_eq!(
        u(&o["resident_bytes"]),
        npages(res) * pg,
        "objects view resident"
    );
    assert_eq!(
        u(&o["swap_bytes"]),
        npages(swp) * pg,
        "objects view swapped"
    );
    assert_eq!(o["exact"], true);
    // procs: the holder owns it, so it is charged the resident part only.
    let procs = json(&["procs", "--pid", &proc.to_string(), "--json"]);
    let p = process(&procs, proc).expect("holder listed");
    assert_eq!(
        u(&p["shared_charged_bytes"]),
        npages(res) * pg,
        "procs charge"
    );
}

#[test]
fn swapped_pages_are_told_from_resident_ones() {
    if !require_root("swapon, and opening objects through /proc/PID/map_files") {
        return;
    }
    let swap = match SwapFile::new(64) {
        Ok(s) => s,
        Err(why) => {
            common::skip(&why);
            return;
        }
    };
    let pg = page();
    let n = 64u64;

    // A memfd the child makes, maps (its only holder), fills, then pushes half of to swap:
    // MADV_PAGEOUT only takes pages mapped once.
    let name = format!("shmwho-swap-{}", unique());
    let cname = CString::new(name.clone()).unwrap();
    let name_ptr = cname.as_ptr() as usize;
    let c = fork_child(&[], &[], After::Pause, move || {
        // SAFETY: raw syscalls on memory of this child; name_ptr points into the parent's
        // CString, copied into this child by fork.
        unsafe {
            let fd = libc::memfd_create(name_ptr as *const libc::c_char, 0);
            if fd < 0 || libc::ftruncate(fd, (n * pg) as libc::off_t) != 0 {
                child::fail(3);
            }
            let p = child::map(fd, (n * pg) as usize, 4);
            child::touch(p, 0, n, pg);
            let t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            };
            for _ in 0..5 {
                libc::madvise(p as *mut libc::c_void, (n / 2 * pg) as usize, 21); // MADV_PAGEOUT
                child::sleep(&t);
            }
            fd as i64
        }
    });
    let link = format!("/proc/{}/fd/{}", c.pid(), c.value);
    let f = std::fs::File::open(&link).expect("the child's memfd");
    let (res, swp) = match truth(f.as_raw_fd(), n) {
        Ok(t) => t,
        Err(e) => {
            common::skip(&format!("{e} (cachestat needs Linux 6.5)"));
            return;
        }
    };
    if swp.is_empty() {
        common::skip("MADV_PAGEOUT pushed nothing to swap");
        return;
    }
    let (dev, ino) = fd_identity(f.as_raw_fd());
    // Our fd would make this process a holder (and, started first, the owner).
    drop(f);
    check_views(
        &format!("memfd:{name}"),
        |o| o["dev"] == dev.as_str() && o["inode"] == ino,
        c.pid(),
        &res,
        &swp,
    );

    // The same for a SysV segment: the objects view takes /proc/sysvipc/shm's columns, show
    // its own ranges; both must agree with the pages. The child creates it, so it owns it.
    let s = fork_child(&[], &[], After::Pause, move || {
        // SAFETY: raw syscalls; the attachment is this child's own.
        unsafe {
            let id = libc::shmget(
                libc::IPC_PRIVATE,
                (n * pg) as usize,
                libc::IPC_CREAT | 0o600,
            );
            if id < 0 {
                child::fail(3);
            }
            let p = child::shmat(id, 4);
            child::touch(p, 0, n, pg);
            let t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            };
            for _ in 0..5 {
                libc::madvise(p as *mut libc::c_void, (n / 2 * pg) as usize, 21);
                child::sleep(&t);
            }
            id as i64
        }
    });
    let shmid = s.value as i32;
    let seg = SysvSeg::adopt(shmid).expect("the child's segment");
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", s.pid())).unwrap();
    let range = maps
        .lines()
        .find(|l| l.contains("/SYSV") && l.split_whitespace().nth(4) == Some(&shmid.to_string()))
        .and_then(|l| l.split_whitespace().next())
        .expect("the attachment in maps")
        .to_string();
    let f = std::fs::File::open(format!("/proc/{}/map_files/{range}", s.pid())).unwrap();
    let (res, swp) = truth(f.as_raw_fd(), n).unwrap();
    drop(f);
    if swp.is_empty() {
        common::skip("(SysV part): MADV_PAGEOUT pushed nothing to swap");
        return;
    }
    check_views(
        &format!("sysv:{shmid}"),
        |o| o["kind"] == "sysv" && o["shmid"] == shmid,
        s.pid(),
        &res,
        &swp,
    );
    drop((c, s, seg, swap));
}

/// Sets shmem_enabled for the life of the guard.
#[test]
fn huge_pages_count_whole() {
    if !require_root("sets shmem_enabled") {
        return;
    }
    // `advise`: only mappings that ask (MADV_HUGEPAGE) get huge pages; others are untouched.
    let Some(_thp) = ShmemThp::set("advise") else {
        common::skip(&format!("cannot set {SHMEM_ENABLED}"));
        return;
    };
    let pg = page();
    let huge = 2u64 << 20;
    let len = 4 * huge;
    // One byte in the first and the third huge page of an 8 MiB shared region.
    let c = fork_child(&[], &[], After::Pause, move || {
        let p = child::map(-1, len as usize, 3);
        // SAFETY: advice on this child's own mapping.
        unsafe { libc::madvise(p as *mut libc::c_void, len as usize, libc::MADV_HUGEPAGE) };
        child::touch(p, 0, 1, pg);
        child::touch(p, 2 * huge / pg, 1, pg);
        p as i64
    });
    let target = format!("{}:{:x}", c.pid(), c.value);
    let doc = json(&["show", &target, "--json"]);
    let resident = u(&doc["object"]["resident_bytes"]);
    if resident != 2 * huge {
        common::skip(&format!(
            "no huge pages given (resident {resident} bytes for 2 touched pages; fragmented memory?)"
        ));
        return;
    }
    let hp = huge / pg;
    assert_eq!(runs(&doc["resident_ranges"]), vec![(0, hp), (2 * hp, hp)]);
    assert_eq!(u(&doc["resident_pages"]) * pg, 2 * huge);
    // What the child has in its page tables agrees with smaps' Rss for the mapping.
    let h = &doc["holders"][0];
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", c.pid())).unwrap();
    let start = format!("{:x}-", c.value);
    let rss_kb: u64 = smaps
        .split_inclusive('\n')
        .skip_while(|l| !l.starts_with(&start))
        .find_map(|l| l.strip_prefix("Rss:"))
        .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap())
        .expect("Rss of the mapping");
    assert_eq!(u(&h["mapped_bytes"]), rss_kb * 1024);
    assert_eq!(u(&h["pss_bytes"]), rss_kb * 1024);
    // The objects view and procs count the huge pages whole.
    let objs = objects_doc();
    let (dev, ino) = (
        doc["object"]["dev"].as_str().unwrap().to_string(),
        u(&doc["object"]["inode"]),
    );
    let o = find_inode(&objs, &(dev, ino)).expect("listed");
    assert_eq!(u(&o["resident_bytes"]), 2 * huge);
    let procs = json(&["procs", "--pid", &c.pid().to_string(), "--json"]);
    let p = process(&procs, c.pid()).unwrap();
    assert_eq!(u(&p["shared_charged_bytes"]), 2 * huge);
    assert_eq!(u(&p["rss_shmem_bytes"]), rss_kb * 1024);
}

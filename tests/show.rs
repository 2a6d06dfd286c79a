//! `shmwho show`: page ranges of real objects compared to what was written, to the page.
//!
//! Every object here is made by the test (or by a `shmwho lab` it starts) and named exactly,
//! so objects of other tests or of the host never matter.

mod common;

use common::*;
use serde_json::Value;

type Runs = Vec<(u64, u64)>;

/// `show ARGS --json`.
fn show(args: &[&str]) -> Value {
    let mut all = vec!["show"];
    all.extend_from_slice(args);
    all.push("--json");
    json(&all)
}

fn runs(v: &Value) -> Runs {
    v.as_array()
        .unwrap_or_else(|| panic!("expected page ranges, got {v}"))
        .iter()
        .map(|r| (u(&r[0]), u(&r[1])))
        .collect()
}

/// Runs from a list of pages (sorted or not).
fn runs_of(pages: &[u64]) -> Runs {
    let mut p = pages.to_vec();
    p.sort_unstable();
    p.dedup();
    let mut out: Runs = Vec::new();
    for x in p {
        match out.last_mut() {
            Some(last) if last.0 + last.1 == x => last.1 += 1,
            _ => out.push((x, 1)),
        }
    }
    out
}

fn pages_of(r: &[(u64, u64)]) -> Vec<u64> {
    r.iter().flat_map(|&(f, c)| f..f + c).collect()
}

/// PSS of each mapping, worked out the way smaps does: page_size/mappers per page, in 1/4096ths.
fn expected_pss(mapped: &[Runs]) -> Vec<u64> {
    let mut count = std::collections::HashMap::new();
    for m in mapped {
        for p in pages_of(m) {
            *count.entry(p).or_insert(0u64) += 1;
        }
    }
    mapped
        .iter()
        .map(|m| {
            let sum: u64 = pages_of(m).iter().map(|p| (page() << 12) / count[p]).sum();
            sum >> 12
        })
        .collect()
}

fn holder(doc: &Value, pid: i64) -> &Value {
    doc["holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not among the holders: {}", doc["holders"]))
}

fn mapped_of(doc: &Value, pid: i64) -> Runs {
    runs(&holder(doc, pid)["mapped_ranges"])
}

/// The strip of the text picture labelled `label` (the glyphs only).
fn strip<'a>(text: &'a str, label: &str) -> &'a str {
    let line = text
        .lines()
        .find(|l| l.starts_with(label) && l.contains(['█', '·']))
        .unwrap_or_else(|| panic!("no strip '{label}' in:\n{text}"));
    let start = line.find(['█', '▓', '▒', '░', '·']).unwrap();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !matches!(c, '█' | '▓' | '▒' | '░' | '·'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// `full` columns of █ then `empty` of ·, in proportion `num/den` of the strip.
fn covers_fraction(s: &str, num: usize, den: usize) -> bool {
    let n = s.chars().count();
    let full = n * num / den;
    n.is_multiple_of(den)
        && s.chars().take(full).all(|c| c == '█')
        && s.chars().skip(full).all(|c| c == '·')
}

#[test]
fn write_up_experiment_page_by_page() {
    if !require_root("the lab's object is opened through /proc/PID/map_files") {
        return;
    }
    let lab = Spawned::start(&["lab", "--size", "16M", "--json", "--for", "120"]);
    let truth = lab.json();
    let master = truth["master_pid"].as_i64().unwrap();
    let c1 = truth["children"][0]["pid"].as_i64().unwrap();
    let c2 = truth["children"][1]["pid"].as_i64().unwrap();
    let obj = &truth["objects"][0];
    let ino = u(&obj["inode"]);
    let id = format!("inode:{}:{ino}", obj["dev"].as_str().unwrap());
    let pages = (16 << 20) / page();

    let doc = show(&[&id]);
    assert_eq!(u(&doc["page_size"]), page());
    assert_eq!(u(&doc["pages"]), pages);
    assert_eq!(doc["object"]["kind"], "anon_shared");
    assert_eq!(
        u(&doc["object"]["resident_bytes"]),
        u(&obj["resident_bytes"])
    );
    assert_eq!(runs(&doc["resident_ranges"]), vec![(0, pages / 2)]);
    assert_eq!(runs(&doc["orphaned_ranges"]), vec![]);
    let want = [vec![], vec![(0, pages / 4)], vec![(0, pages / 2)]];
    for (pid, w) in [master, c1, c2].iter().zip(&want) {
        assert_eq!(&mapped_of(&doc, *pid), w, "pid {pid}");
        assert_eq!(holder(&doc, *pid)["via"], "map");
    }
    let pss = expected_pss(&want);
    for (pid, p) in [master, c1, c2].iter().zip(pss) {
        assert_eq!(u(&holder(&doc, *pid)["pss_bytes"]), p, "PSS of {pid}");
    }

    // The picture reads at a glance: child 1 a quarter, child 2 half, the master nothing.
    let out = run(&["show", &id, "--width", "90"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        covers_fraction(strip(&text, &format!("{c1} ")), 1, 4),
        "{text}"
    );
    assert!(
        covers_fraction(strip(&text, &format!("{c2} ")), 1, 2),
        "{text}"
    );
    assert!(covers_fraction(strip(&text, "resident"), 1, 2), "{text}");
    assert!(
        covers_fraction(strip(&text, &format!("{master} ")), 0, 4),
        "{text}"
    );
    assert!(covers_fraction(strip(&text, "orphaned"), 0, 4), "{text}");
    // A bare inode works too, unless a process happens to have that number.
    if !std::path::Path::new(&format!("/proc/{ino}")).exists() {
        let d2 = show(&[&ino.to_string()]);
        assert_eq!(d2["object"]["inode"], ino);
    }
}

#[test]
fn write_up_experiment_after_the_children_exit() {
    if !require_root("the lab's object is opened through /proc/PID/map_files") {
        return;
    }
    let lab = Spawned::start(&[
        "lab",
        "--size",
        "16M",
        "--exit-children",
        "--json",
        "--for",
        "120",
    ]);
    let truth = lab.json();
    let master = truth["master_pid"].as_i64().unwrap();
    let obj = &truth["objects"][0];
    let id = format!(
        "inode:{}:{}",
        obj["dev"].as_str().unwrap(),
        u(&obj["inode"])
    );
    let pages = (16 << 20) / page();
    let doc = show(&[&id]);
    assert_eq!(runs(&doc["resident_ranges"]), vec![(0, pages / 2)]);
    assert_eq!(runs(&doc["orphaned_ranges"]), vec![(0, pages / 2)]);
    assert_eq!(u(&doc["orphaned_pages"]), pages / 2);
    assert_eq!(doc["holders"].as_array().unwrap().len(), 1);
    assert_eq!(mapped_of(&doc, master), vec![]);
    let out = run(&["show", &id, "--width", "90"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(covers_fraction(strip(&text, "orphaned"), 1, 2), "{text}");
    assert!(text.contains("orphaned: 8.0 MiB"), "{text}");

    // The master's page: it owns the object, which ps does not show.
    let p = show(&[&format!("pid:{master}")]);
    assert_eq!(p["pid"], master);
    assert_eq!(u(&p["owned_resident_bytes"]), 8 << 20);
    assert_eq!(u(&p["charged"]["owner"]), 8 << 20);
    let verdict = p["verdict"].as_str().unwrap();
    // The lab master is named by its title (its command line).
    assert!(
        // The process is named by its title (the lab's command line), then its pid.
        verdict.contains(&format!(
            "{master} owns 8.0 MiB of shared memory that ps shows as"
        )),
        "{verdict}"
    );
    assert!(
        verdict.contains(
            "8.0 MiB of it is in no live process's page tables, which is normal for a cache or pool it keeps"
        ),
        "{verdict}"
    );
}

#[test]
fn overlapping_disjoint_and_interleaved_writers() {
    if !require_root("the region is opened through /proc/PID/map_files") {
        return;
    }
    let pg = page();
    let region = SharedRegion::new(96);
    let addr = region.addr();
    let a = fork_child(&[&region], &[], After::Pause, || {
        child::touch(addr, 0, 16, pg);
        0
    });
    let b = fork_child(&[&region], &[], After::Pause, || {
        child::touch(addr, 8, 32, pg);
        0
    });
    let c = fork_child(&[&region], &[], After::Pause, || {
        child::touch(addr, 48, 16, pg);
        0
    });
    let d = fork_child(&[&region], &[], After::Pause, || {
        for i in 0..10 {
            child::touch(addr, 64 + 3 * i, 1, pg);
        }
        0
    });
    let interleaved: Vec<u64> = (0..10).map(|i| 64 + 3 * i).collect();
    let want: Vec<(i64, Runs)> = vec![
        (my_pid(), vec![]),
        (a.pid(), vec![(0, 16)]),
        (b.pid(), vec![(8, 32)]),
        (c.pid(), vec![(48, 16)]),
        (d.pid(), runs_of(&interleaved)),
    ];
    // By PID:ADDRESS, as the holders list prints it, in the middle of the mapping.
    let target = format!("{}:{:x}", my_pid(), addr + 5 * pg as usize);
    let doc = show(&[&target]);
    let all: Vec<u64> = want.iter().flat_map(|(_, r)| pages_of(r)).collect();
    assert_eq!(runs(&doc["resident_ranges"]), runs_of(&all));
    assert_eq!(runs(&doc["orphaned_ranges"]), vec![]);
    let pss = expected_pss(&want.iter().map(|w| w.1.clone()).collect::<Vec<_>>());
    for ((pid, r), p) in want.iter().zip(pss) {
        assert_eq!(&mapped_of(&doc, *pid), r, "mapped ranges of {pid}");
        assert_eq!(u(&holder(&doc, *pid)["pss_bytes"]), p, "PSS of {pid}");
        assert_eq!(
            u(&holder(&doc, *pid)["mapped_bytes"]),
            pages_of(r).len() as u64 * pg
        );
    }

    // One process's view: C alone maps its 16 pages.
    let pc = show(&[&format!("pid:{}", c.pid())]);
    let objs = pc["objects"].as_array().unwrap();
    let mine = objs
        .iter()
        .find(|o| o["object"]["inode"] == region.identity().1)
        .expect("the region among C's objects");
    assert_eq!(u(&mine["mapped_bytes"]), 16 * pg);
    assert_eq!(u(&mine["pss_bytes"]), 16 * pg);
    assert_eq!(mine["owned"], false);
    assert_eq!(u(&pc["charged"]["owner"]), 0);
    assert_eq!(u(&pc["charged"]["touched"]), 16 * pg);
    assert!(pc["verdict"]
        .as_str()
        .unwrap()
        .contains("owns no shared memory"));

    // B exits: the pages only B mapped (16..40) are orphaned; 8..16 are still A's.
    let b_pid = b.pid();
    b.kill();
    let doc = show(&[&target]);
    assert_eq!(runs(&doc["orphaned_ranges"]), vec![(16, 24)]);
    assert_eq!(runs(&doc["resident_ranges"]), runs_of(&all));
    assert!(doc["holders"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["pid"] != b_pid));
    drop((a, c, d));
}

#[test]
fn memfd_written_without_a_mapping() {
    // No privilege needed: the owner may open its own process's fd link.
    let pg = page();
    let name = format!("shmwho-show-{}", unique());
    let m = Memfd::new(&name, 64 * pg);
    pwrite_pages(m.raw(), 0, 4);
    pwrite_pages(m.raw(), 10, 1);
    pwrite_pages(m.raw(), 20, 3);
    // Allocated but never written: counted by st_blocks and Shmem, skipped by mincore.
    // SAFETY: plain syscall on our fd.
    let rc = unsafe { libc::fallocate(m.raw(), 0, (30 * pg) as i64, (4 * pg) as i64) };
    assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
    let doc = show(&[&format!("memfd:{name}")]);
    let want = vec![(0, 4), (10, 1), (20, 3), (30, 4)];
    assert_eq!(runs(&doc["resident_ranges"]), want);
    assert_eq!(u(&doc["object"]["resident_bytes"]), 12 * pg);
    // Held as an fd only: no page tables, so every resident page is orphaned.
    assert_eq!(runs(&doc["orphaned_ranges"]), want);
    let h = holder(&doc, my_pid());
    assert_eq!(h["via"], "fd");
    assert_eq!(runs(&h["mapped_ranges"]), vec![]);
}

#[test]
fn sysv_segment_attached_then_not() {
    if !require_root("the segment is opened through /proc/PID/map_files") {
        return;
    }
    let pg = page();
    // A key of our own, so `show 0xKEY` can be tried.
    let key = 0x5300_0000 | (std::process::id() as i32 & 0x00ff_ffff);
    // SAFETY: plain syscall.
    let shmid = unsafe {
        libc::shmget(
            key,
            (32 * pg) as usize,
            libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
        )
    };
    if shmid < 0 {
        common::skip(&format!(
            "shmget with key {key:#x}: {}",
            std::io::Error::last_os_error()
        ));
        return;
    }
    let seg = SysvSeg::adopt(shmid).expect("segment just made");
    let c = fork_child(&[], &[], After::Pause, move || {
        let p = child::shmat(shmid, 5);
        child::touch(p, 0, 8, pg);
        0
    });
    let doc = show(&[&format!("sysv:{shmid}")]);
    assert_eq!(runs(&doc["resident_ranges"]), vec![(0, 8)]);
    assert_eq!(mapped_of(&doc, c.pid()), vec![(0, 8)]);
    assert_eq!(runs(&doc["orphaned_ranges"]), vec![]);
    let by_key = show(&[&format!("{:#010x}", key as u32)]);
    assert_eq!(by_key["object"]["shmid"], shmid);

    // Detached: the segment keeps its pages, and shmwho never attaches it to look.
    c.kill();
    let doc = show(&[&format!("sysv:{shmid}")]);
    assert!(doc["resident_ranges"].is_null());
    assert!(doc["ranges_unavailable"]
        .as_str()
        .unwrap()
        .contains("attach"));
    assert_eq!(u(&doc["orphaned_pages"]), 8);
    assert_eq!(u(&doc["object"]["resident_bytes"]), 8 * pg);
    drop(seg);
}

#[test]
fn files_by_path_held_by_nobody() {
    if !require_root("mounts a tmpfs") {
        return;
    }
    let pg = page();
    let mut shm = PosixShm::new("-show", 16 * pg);
    pwrite_pages(shm.raw(), 2, 3);
    shm.close();
    let doc = show(&[shm.path.to_str().unwrap()]);
    assert_eq!(doc["object"]["kind"], "posix_shm");
    assert_eq!(runs(&doc["resident_ranges"]), vec![(2, 3)]);
    assert_eq!(runs(&doc["orphaned_ranges"]), vec![(2, 3)]);
    assert_eq!(doc["holders"].as_array().unwrap().len(), 0);

    // A tmpfs file nobody holds is not in the objects view, but can be shown by path.
    let mount = TmpfsMount::new("4m");
    let fd = mount.create("f", 8 * pg);
    use std::os::fd::AsRawFd;
    pwrite_pages(fd.as_raw_fd(), 5, 2);
    drop(fd);
    let path = mount.path.join("f");
    let doc = show(&[path.to_str().unwrap()]);
    assert_eq!(doc["object"]["kind"], "tmpfs");
    assert_eq!(runs(&doc["resident_ranges"]), vec![(5, 2)]);
    assert_eq!(u(&doc["object"]["size_bytes"]), 8 * pg);
}

#[test]
fn unknown_or_malformed_objects_are_one_line_errors() {
    let missing = format!("memfd:shmwho-no-such-{}", unique());
    for (arg, says) in [
        (missing.as_str(), "no shared-memory object"),
        ("not-an-object", "cannot read 'not-an-object'"),
        ("pid:0", "no process with pid 0"),
        ("0x00000000", "IPC_PRIVATE"),
    ] {
        let out = run(&["show", arg]);
        assert_eq!(out.status.code(), Some(1), "{arg}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{arg}: {err}");
        assert!(
            err.starts_with("shmwho: ") && err.contains(says),
            "{arg}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn private_mapping_counts_only_the_objects_pages() {
    // The owner reads its own process's fd link: no privilege needed.
    let pg = page();
    let name = format!("shmwho-show-private-{}", unique());
    let m = Memfd::new(&name, 8 * pg);
    pwrite_pages(m.raw(), 0, 4);
    let fd = m.raw();
    // MAP_PRIVATE: reading page 0 maps the object's pages 0-3 (fault-around maps what is in
    // the page cache nearby); writing page 2 then replaces it with an anonymous copy-on-write
    // page, which is not the object's.
    let c = fork_child(&[], &[fd], After::Pause, move || {
        // SAFETY: a fresh private mapping of the inherited fd, touched only inside it.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                (8 * pg) as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                fd,
                0,
            );
            if p == libc::MAP_FAILED {
                child::fail(3);
            }
            let b = p as *mut u8;
            std::ptr::read_volatile(b);
            std::ptr::read_volatile(b.add(pg as usize));
            std::ptr::write_volatile(b.add(2 * pg as usize), 7);
        }
        0
    });
    let doc = show(&[&format!("memfd:{name}")]);
    assert_eq!(runs(&doc["resident_ranges"]), vec![(0, 4)]);
    let h = doc["holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["pid"] == c.pid() && h["via"] == "map")
        .expect("the child's mapping");
    assert_eq!(runs(&h["mapped_ranges"]), vec![(0, 2), (3, 1)]);
    assert_eq!(runs(&doc["orphaned_ranges"]), vec![(2, 1)]);
}

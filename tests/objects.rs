//! The objects view against real kernel objects of known size, to the byte.
//!
//! Every test creates its own objects and finds them by identity (dev+inode, shmid, path); it
//! never asserts on objects it did not make (the host is shared, other tests run alongside).

mod common;

use common::*;
use std::os::fd::AsRawFd;

/// The write-up's case: a parent maps a shared region and never touches it, two children write
/// its first pages. The object is charged to the parent, and after the children die its pages
/// stay resident with only the parent mapping it (`ps` shows nothing anywhere).
#[test]
fn anon_shared_written_by_children_then_orphaned() {
    if !require_root("anonymous shared memory is measured through map_files") {
        return;
    }
    let pg = page();
    let (n, a, b) = (301u64, 37u64, 113u64);
    let region = SharedRegion::new(n);
    let id = region.identity();
    let addr = region.addr();
    let me = my_pid();

    let c1 = fork_child(&[&region], &[], After::Pause, move || {
        child::touch(addr, 0, a, pg);
        0
    });
    let c2 = fork_child(&[&region], &[], After::Pause, move || {
        child::touch(addr, 0, b, pg);
        0
    });
    let (p1, p2) = (c1.pid(), c2.pid());

    let doc = objects_doc();
    let o = find_inode(&doc, &id).unwrap_or_else(|| panic!("object {id:?} not listed"));
    assert_eq!(o["kind"], "anon_shared");
    assert_eq!(u(&o["size_bytes"]), n * pg);
    assert_eq!(u(&o["resident_bytes"]), b * pg);
    assert_eq!(u(&o["swap_bytes"]), 0);
    assert_eq!(o["exact"], true);
    assert!(o["estimate_reason"].is_null());
    assert_eq!(holders(o), sorted(vec![map(me), map(p1), map(p2)]));
    for h in o["holders"].as_array().unwrap() {
        // The region is mapped at the same address in parent and children.
        assert_eq!(h["start"], format!("{:x}", addr));
        assert_eq!(h["end"], format!("{:x}", addr + region.len()));
        assert_eq!(u(&h["offset"]), 0);
    }
    assert_eq!(owner_pid(o), Some(me), "the first-started holder owns it");
    assert_eq!(charges(o), vec![(me, b * pg)]);
    assert_eq!(o["id"], id.1.to_string());

    // --pid narrows to objects the pid holds or owns: ours is among them for a child.
    let only_c1 = json(&["--json", "--pid", &p1.to_string()]);
    assert!(find_inode(&only_c1, &id).is_some());
    for o in objects(&only_c1) {
        let held = holders(o).iter().any(|h| h.0 == p1);
        assert!(held || owner_pid(o) == Some(p1), "--pid {p1} listed {o}");
    }

    c1.kill();
    c2.kill();
    let doc = objects_doc();
    let o = find_inode(&doc, &id).expect("still listed: the parent maps it");
    assert_eq!(
        u(&o["resident_bytes"]),
        b * pg,
        "pages outlive their writers"
    );
    assert_eq!(u(&o["size_bytes"]), n * pg);
    assert_eq!(holders(o), vec![map(me)]);
    assert_eq!(owner_pid(o), Some(me));
    assert_eq!(o["exact"], true);
}

/// A segment a child created, wrote and left (nattch 0, creator dead): nobody holds it, nobody
/// owns it, and it counts as held by no process in both views.
#[test]
fn sysv_left_by_a_dead_creator_is_unheld() {
    let pg = page();
    let (n, k) = (211u64, 19u64);
    let size = n * pg - 100; // not a page multiple: size_bytes is the size asked for
    let c = fork_child(&[], &[], After::Exit, move || {
        // SAFETY (child): raw syscalls only.
        let shmid =
            unsafe { libc::shmget(libc::IPC_PRIVATE, size as usize, libc::IPC_CREAT | 0o600) };
        if shmid < 0 {
            child::fail(3);
        }
        let addr = child::shmat(shmid, 4);
        child::touch(addr, 0, k, pg);
        shmid as i64
    });
    let seg = SysvSeg::adopt(c.value as i32).expect("segment exists");
    drop(c);

    let doc = objects_doc();
    let o = find_shmid(&doc, seg.shmid).expect("unattached segment listed");
    assert_eq!(o["kind"], "sysv");
    assert_eq!(o["id"], format!("sysv:{}", seg.shmid));
    assert_eq!(u(&o["nattch"]), 0);
    assert_eq!(o["removed"], false);
    assert_eq!(o["key"], 0, "IPC_PRIVATE");
    assert_eq!(u(&o["size_bytes"]), size);
    assert_eq!(u(&o["resident_bytes"]), k * pg);
    assert_eq!(u(&o["swap_bytes"]), 0);
    assert_eq!(o["exact"], true);
    assert!(holders(o).is_empty());
    assert!(o["owner"].is_null(), "creator is dead: {o}");
    assert!(charges(o).is_empty());
    // unheld_bytes is the resident sum of the objects nobody owns, ours among them.
    let unowned: u64 = objects(&doc)
        .iter()
        .filter(|o| o["owner"].is_null())
        .map(|o| u(&o["resident_bytes"]))
        .sum();
    assert_eq!(u(&doc["unheld_bytes"]), unowned);
    assert!(u(&doc["unheld_bytes"]) >= k * pg);

    let procs = json(&["procs", "--json"]);
    assert!(u(&procs["unheld_bytes"]) >= k * pg);
}

/// A segment this process created and a child attached, wrote and left: while its creator
/// lives the creator owns it (`shmwho procs --help`: "the SysV creator while it lives"), though
/// no process holds it.
#[test]
fn sysv_unattached_segment_is_owned_by_its_living_creator() {
    let pg = page();
    let (n, k) = (97u64, 23u64);
    let seg = SysvSeg::new(n * pg);
    let shmid = seg.shmid;
    let _c = fork_child(&[], &[], After::Exit, move || {
        let addr = child::shmat(shmid, 4);
        child::touch(addr, n - k, k, pg);
        0
    });
    let me = my_pid();
    let doc = objects_doc();
    let o = find_shmid(&doc, shmid).expect("listed");
    assert_eq!(u(&o["nattch"]), 0);
    assert_eq!(u(&o["size_bytes"]), n * pg);
    assert_eq!(u(&o["resident_bytes"]), k * pg);
    assert!(holders(o).is_empty());
    assert_eq!(owner_pid(o), Some(me));
    assert_eq!(charges(o), vec![(me, k * pg)]);
}

/// IPC_RMID while a child is still attached: listed as removed, with its resident, until the
/// last detach frees it.
#[test]
fn sysv_removed_but_attached() {
    let pg = page();
    let (n, k) = (157u64, 41u64);
    let seg = SysvSeg::new(n * pg);
    let shmid = seg.shmid;
    let c = fork_child(&[], &[], After::Pause, move || {
        let addr = child::shmat(shmid, 4);
        child::touch(addr, 3, k, pg);
        addr as i64
    });
    seg.remove();
    let me = my_pid();

    let doc = objects_doc();
    let o = find_shmid(&doc, shmid).expect("removed segment still listed while attached");
    assert_eq!(o["removed"], true);
    assert_eq!(u(&o["nattch"]), 1);
    assert_eq!(u(&o["size_bytes"]), n * pg);
    assert_eq!(u(&o["resident_bytes"]), k * pg);
    assert_eq!(o["exact"], true);
    assert_eq!(holders(o), vec![map(c.pid())]);
    assert_eq!(
        o["holders"][0]["start"],
        format!("{:x}", c.value as u64),
        "holder mapping address"
    );
    // The creator (this process) is alive and created it before the removal.
    assert_eq!(owner_pid(o), Some(me));

    c.kill();
    assert!(!seg.exists(), "freed at last detach");
    let doc = objects_doc();
    assert!(find_shmid(&doc, shmid).is_none());
}

/// A memfd held only as an fd, never mapped, with hostile names: kind, name and size exact.
#[test]
fn memfd_held_only_as_fd() {
    let pg = page();
    let me = my_pid();
    let tag = unique();
    let cases = [
        (format!("shmwho test (deleted) inside {tag}"), 83u64, 29u64),
        (format!("shmwho test {tag} (deleted)"), 59u64, 7u64),
    ];
    let fds: Vec<(Memfd, u64, u64)> = cases
        .iter()
        .map(|(name, n, k)| {
            let m = Memfd::new(name, n * pg);
            // Written with a hole in front: resident counts pages, not offsets.
            pwrite_pages(m.raw(), 5, *k);
            (m, *n, *k)
        })
        .collect();

    let doc = objects_doc();
    for (m, n, k) in &fds {
        let id = m.identity();
        let o = find_inode(&doc, &id).unwrap_or_else(|| panic!("memfd {:?} not listed", m.name));
        assert_eq!(o["kind"], "memfd");
        assert_eq!(o["name"], m.name.as_str());
        assert_eq!(u(&o["size_bytes"]), n * pg);
        assert_eq!(u(&o["resident_bytes"]), k * pg);
        assert_eq!(o["exact"], true);
        assert_eq!(holders(o), vec![fd(me)]);
        assert_eq!(o["holders"][0]["fd"], m.raw());
        assert!(o["holders"][0]["start"].is_null());
        assert_eq!(owner_pid(o), Some(me));
        assert_eq!(charges(o), vec![(me, k * pg)]);
        assert!(o.get("path").is_none(), "memfd has no path: {o}");
    }
}

/// POSIX shm written and closed: no process involved at all, yet listed with its resident.
#[test]
fn posix_shm_held_by_nobody() {
    let pg = page();
    let (n, k) = (71u64, 13u64);
    let size = n * pg + 1234;
    let mut shm = PosixShm::new("", size);
    pwrite_pages(shm.raw(), 0, k);
    shm.close();
    let id = shm.identity();

    let doc = objects_doc();
    let o = find_inode(&doc, &id).expect("unheld /dev/shm file listed");
    assert_eq!(o["kind"], "posix_shm");
    assert_eq!(o["path"], shm.path.to_str().unwrap());
    assert_eq!(o["deleted"], false);
    assert_eq!(o["mount_point"], "/dev/shm");
    assert_eq!(u(&o["size_bytes"]), size);
    assert_eq!(u(&o["resident_bytes"]), k * pg);
    assert_eq!(o["exact"], true);
    assert!(holders(o).is_empty());
    assert!(o["owner"].is_null());
    assert!(charges(o).is_empty());
    assert!(u(&doc["unheld_bytes"]) >= k * pg);
}

/// POSIX shm whose name ends in " (deleted)", mapped only by a child that wrote into it.
#[test]
fn posix_shm_mapped_by_a_child() {
    let pg = page();
    let (n, k, j) = (67u64, 5u64, 17u64);
    let mut shm = PosixShm::new(" (deleted)", n * pg);
    pwrite_pages(shm.raw(), 0, k);
    let fd = shm.raw();
    let c = fork_child(&[], &[fd], After::Pause, move || {
        let addr = child::map_and_close(fd, (n * pg) as usize, 5);
        child::touch(addr, n - j, j, pg);
        addr as i64
    });
    shm.close();
    let id = shm.identity();

    let doc = objects_doc();
    let o = find_inode(&doc, &id).expect("listed");
    assert_eq!(o["kind"], "posix_shm");
    assert_eq!(o["path"], shm.path.to_str().unwrap(), "name kept whole");
    assert_eq!(o["deleted"], false, "not unlinked, only named so");
    assert_eq!(u(&o["size_bytes"]), n * pg);
    assert_eq!(u(&o["resident_bytes"]), (k + j) * pg);
    assert_eq!(holders(o), vec![map(c.pid())]);
    assert_eq!(o["holders"][0]["start"], format!("{:x}", c.value as u64));
    assert_eq!(owner_pid(o), Some(c.pid()));
    assert_eq!(charges(o), vec![(c.pid(), (k + j) * pg)]);
}

/// A file on a fresh tmpfs, mapped by a child and unlinked; a second file nobody holds shows up
/// only in the mount's footer figures.
#[test]
fn tmpfs_deleted_mapped_file_and_unheld_file() {
    if !require_root("mounts a tmpfs") {
        return;
    }
    let pg = page();
    let (n, k1, k2, m) = (89u64, 11u64, 6u64, 31u64);
    let mnt = TmpfsMount::new("8m");
    let held_path = mnt.path.join("held file");
    let held = mnt.create("held file", n * pg);
    pwrite_pages(held.as_raw_fd(), 0, k1);
    let fd = held.as_raw_fd();
    let c = fork_child(&[], &[fd], After::Pause, move || {
        let addr = child::map_and_close(fd, (n * pg) as usize, 5);
        child::touch(addr, n - k2, k2, pg);
        addr as i64
    });
    let id = fd_identity(fd);
    std::fs::remove_file(&held_path).unwrap();
    drop(held);

    let unheld = mnt.create("unheld", m * pg);
    pwrite_pages(unheld.as_raw_fd(), 0, m);
    let unheld_id = fd_identity(unheld.as_raw_fd());
    drop(unheld);

    let doc = objects_doc();
    let o = find_inode(&doc, &id).expect("deleted mapped tmpfs file listed");
    assert_eq!(o["kind"], "tmpfs");
    assert_eq!(o["deleted"], true);
    assert_eq!(o["path"], held_path.to_str().unwrap());
    assert_eq!(o["mount_point"], mnt.path.to_str().unwrap());
    assert_eq!(u(&o["size_bytes"]), n * pg);
    assert_eq!(u(&o["resident_bytes"]), (k1 + k2) * pg);
    assert_eq!(o["exact"], true);
    assert_eq!(holders(o), vec![map(c.pid())]);
    assert_eq!(owner_pid(o), Some(c.pid()));
    assert!(
        find_inode(&doc, &unheld_id).is_none(),
        "unheld tmpfs files are not listed, only counted per mount"
    );

    let mounts: Vec<&serde_json::Value> = doc["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["mount_point"] == mnt.path.to_str().unwrap())
        .collect();
    assert_eq!(mounts.len(), 1, "{:?}", doc["mounts"]);
    let mt = mounts[0];
    assert_eq!(u(&mt["used_bytes"]), (k1 + k2 + m) * pg);
    assert_eq!(u(&mt["listed_bytes"]), (k1 + k2) * pg);
    assert_eq!(u(&mt["unheld_files_bytes"]), m * pg);
    drop(c);
}

/// A keyed segment whose key does not fit in a positive i32: `key` is signed as the kernel
/// prints it, and a hostile command name survives into the holder's `comm`.
#[test]
fn sysv_negative_key_and_hostile_comm() {
    let pg = page();
    let (n, k) = (33u64, 9u64);
    // Unique per process and call, high bit set.
    let key = (0x8000_0000u32 | (std::process::id() << 8) | 0x5a) as i32;
    // SAFETY: plain syscall.
    let shmid = unsafe {
        libc::shmget(
            key,
            (n * pg) as usize,
            libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
        )
    };
    assert!(shmid >= 0, "shmget: {}", std::io::Error::last_os_error());
    let seg = SysvSeg::adopt(shmid).unwrap();
    let c = fork_child(&[], &[], After::Pause, move || {
        // SAFETY (child): plain syscall; the name is a static C string.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"a) b (c\nd".as_ptr()) };
        let addr = child::shmat(shmid, 4);
        child::touch(addr, 0, k, pg);
        0
    });
    let doc = objects_doc();
    let o = find_shmid(&doc, seg.shmid).expect("listed");
    assert_eq!(o["key"], key);
    assert!(key < 0);
    assert_eq!(u(&o["nattch"]), 1);
    assert_eq!(u(&o["resident_bytes"]), k * pg);
    assert_eq!(holders(o), vec![map(c.pid())]);
    assert_eq!(o["holders"][0]["comm"], "a) b (c\nd");
    assert_eq!(owner_pid(o), Some(my_pid()), "creator alive");

    let procs = json(&["procs", "--json", "--pid", &c.pid().to_string()]);
    let row = process(&procs, c.pid()).expect("child row");
    assert_eq!(row["comm"], "a) b (c\nd");
    assert_eq!(row["ppid"], my_pid());
    assert_eq!(u(&row["rss_shmem_bytes"]), k * pg);
}

/// Sets the number of 2 MiB huge pages for the duration of a test, restoring it on drop.
struct HugePages {
    path: &'static str,
    before: String,
}

impl HugePages {
    fn reserve(n: u64) -> Option<HugePages> {
        let path = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
        let before = std::fs::read_to_string(path).ok()?;
        let have: u64 = before.trim().parse().ok()?;
        std::fs::write(path, (have + n).to_string()).ok()?;
        let g = HugePages { path, before };
        let now: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
        (now >= have + n).then_some(g)
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path, self.before.trim());
    }
}

/// A SHM_HUGETLB segment with one huge page faulted in holds 2 MiB: hugetlb memory, which
/// /proc/meminfo's Shmem does not count either. (This kernel's /proc/sysvipc/shm `rss` column
/// reports 1 GiB for it: 512 base pages counted 512 times.)
#[test]
fn sysv_hugetlb_segment_is_not_overcounted() {
    if !require_root("reserves a huge page (restored afterwards)") {
        return;
    }
    let Some(_hp) = HugePages::reserve(2) else {
        common::skip("could not reserve 2 MiB huge pages");
        return;
    };
    let huge = 2u64 << 20;
    let pg = page();
    // SAFETY: plain syscall.
    let shmid = unsafe {
        libc::shmget(
            libc::IPC_PRIVATE,
            huge as usize,
            libc::IPC_CREAT | libc::SHM_HUGETLB | 0o600,
        )
    };
    assert!(shmid >= 0, "shmget: {}", std::io::Error::last_os_error());
    let seg = SysvSeg::adopt(shmid).unwrap();
    let _c = fork_child(&[], &[], After::Exit, move || {
        child::touch(child::shmat(shmid, 4), 0, 1, pg);
        0
    });
    let doc = objects_doc();
    let o = find_shmid(&doc, seg.shmid).expect("listed");
    assert_eq!(u(&o["size_bytes"]), huge);
    assert_eq!(u(&o["resident_bytes"]), huge, "one huge page: {o}");
    assert!(
        u(&doc["explained_bytes"]) <= u(&doc["meminfo_shmem_bytes"]) + (64 << 20),
        "hugetlb memory is not Shmem: explained {} vs Shmem {}",
        doc["explained_bytes"],
        doc["meminfo_shmem_bytes"]
    );
}

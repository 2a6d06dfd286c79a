//! Shared memory in huge pages, against real hugetlb objects: MAP_HUGETLB anonymous shared
//! memory, MFD_HUGETLB memfds, and files on a hugetlbfs mount made here (mapped, held open,
//! held by nobody), each exact to the huge page, owned, and set against the huge page pools.
//!
//! Huge pages are reserved by adding to `nr_hugepages` and given back by subtracting the same
//! number in a guard (other test runs on this host reserve theirs at the same time: writing
//! back an absolute value would take theirs away). The mount is detached in a guard.

mod common;

use common::*;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const HUGE: u64 = 2 << 20;
const NR: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

fn read_nr() -> Option<u64> {
    std::fs::read_to_string(NR).ok()?.trim().parse().ok()
}

/// `n` more 2 MiB huge pages in the pool while it lives.
struct Reserved(u64);

/// The read and write of `nr_hugepages` one test at a time: two tests of this binary that read
/// the same count would each write it plus their own, and share one reservation (a test then
/// failed its mmap with ENOMEM).
static POOL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Reserved {
    fn add(n: u64) -> Option<Reserved> {
        let _one = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let have = read_nr()?;
        std::fs::write(NR, (have + n).to_string()).ok()?;
        let g = Reserved(n);
        (read_nr()? >= have + n).then_some(g)
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        let _one = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(now) = read_nr() {
            let _ = std::fs::write(NR, now.saturating_sub(self.0).to_string());
        }
    }
}

/// A hugetlbfs mount (2 MiB pages) on a temporary directory, detached when dropped.
struct HugeMount {
    dir: tempfile::TempDir,
}

impl HugeMount {
    fn new() -> Option<HugeMount> {
        let dir = tempfile::Builder::new()
            .prefix("shmwho-test-hugetlbfs-")
            .tempdir()
            .ok()?;
        let target = CString::new(dir.path().as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: plain syscall with NUL-terminated strings that outlive it.
        let rc = unsafe {
            libc::mount(
                c"none".as_ptr(),
                target.as_ptr(),
                c"hugetlbfs".as_ptr(),
                0,
                c"pagesize=2M".as_ptr().cast(),
            )
        };
        (rc == 0).then_some(HugeMount { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for HugeMount {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let target = CString::new(self.dir.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: plain syscall.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A shared mapping of `len` bytes, unmapped when dropped; not inherited by forks.
struct Mapping {
    addr: usize,
    len: usize,
}

impl Mapping {
    fn new(fd: Option<i32>, len: u64) -> Mapping {
        let flags = libc::MAP_SHARED
            | if fd.is_none() {
                libc::MAP_ANONYMOUS | libc::MAP_HUGETLB
            } else {
                0
            };
        // SAFETY: a fresh mapping; the kernel chooses the address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd.unwrap_or(-1),
                0,
            )
        };
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: our own mapping; other tests' forks must not inherit it.
        unsafe { libc::madvise(p, len as usize, libc::MADV_DONTFORK) };
        Mapping {
            addr: p as usize,
            len: len as usize,
        }
    }

    /// Faults in huge page `i`.
    fn touch(&self, i: u64) {
        // SAFETY: inside our own writable mapping.
        unsafe { std::ptr::write_volatile((self.addr + (i * HUGE) as usize) as *mut u8, 1) };
    }

    /// (dev, inode) of the object behind the mapping, as the JSON prints them.
    fn identity(&self) -> (String, u64) {
        let link = format!(
            "/proc/self/map_files/{:x}-{:x}",
            self.addr,
            self.addr + self.len
        );
        path_identity(Path::new(&link))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, not used after this.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

fn hugetlb_memfd(name: &str) -> OwnedFd {
    let c = CString::new(name).unwrap();
    // SAFETY: plain syscall.
    let fd = unsafe {
        libc::memfd_create(
            c.as_ptr(),
            libc::MFD_HUGETLB | libc::MFD_HUGE_2MB | libc::MFD_CLOEXEC,
        )
    };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn open_new(path: &Path, len: u64) -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .expect("create on hugetlbfs");
    f.set_len(len).expect("ftruncate on hugetlbfs");
    f
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Each form of hugetlb shared memory, found, exact to the huge page, owned, and counted in
/// the `hugetlb` block rather than against Shmem.
#[test]
fn every_form_of_hugetlb_shared_memory_is_listed_exactly() {
    if !require_root("reserves huge pages and mounts hugetlbfs (both undone afterwards)") {
        return;
    }
    // Shared mappings reserve their whole length: 4 (anon) + 4 (memfd) + 2 + 2 + 2 (files),
    // and slack for other test runs taking pages meanwhile.
    let Some(_pool) = Reserved::add(20) else {
        common::skip("could not reserve 2 MiB huge pages");
        return;
    };
    let Some(mnt) = HugeMount::new() else {
        common::skip("could not mount hugetlbfs");
        return;
    };
    let me = my_pid();

    let anon = Mapping::new(None, 4 * HUGE);
    anon.touch(0);
    anon.touch(3);

    let memfd = hugetlb_memfd(&format!("shmwho-huge-{}", unique()));
    rustix::fs::ftruncate(&memfd, 4 * HUGE).unwrap();
    let memfd_map = Mapping::new(Some(memfd.as_raw_fd()), 4 * HUGE);
    for i in 0..3 {
        memfd_map.touch(i);
    }

    let mapped_file = open_new(&mnt.path("mapped"), 2 * HUGE);
    let file_map = Mapping::new(Some(mapped_file.as_raw_fd()), 2 * HUGE);
    file_map.touch(1);
    drop(mapped_file); // held by the mapping alone

    // Held open only: its pages were faulted in through a mapping since unmapped.
    let open_file = open_new(&mnt.path("open"), 2 * HUGE);
    {
        let m = Mapping::new(Some(open_file.as_raw_fd()), 2 * HUGE);
        m.touch(0);
        m.touch(1);
    }

    // Held by nobody: the file keeps its huge page.
    {
        let f = open_new(&mnt.path("unheld"), 2 * HUGE);
        let m = Mapping::new(Some(f.as_raw_fd()), 2 * HUGE);
        m.touch(0);
    }

    let doc = objects_doc();
    let check = |id: &(String, u64), kind: &str, size: u64, resident: u64| {
        let o = find_inode(&doc, id).unwrap_or_else(|| panic!("{kind} {id:?} not listed"));
        assert_eq!(o["kind"], kind, "{o}");
        assert_eq!(u(&o["page_size_bytes"]), HUGE, "{o}");
        assert_eq!(o["hugetlb"], true, "{o}");
        assert_eq!(o["exact"], true, "{o}");
        assert_eq!(u(&o["size_bytes"]), size, "{o}");
        assert_eq!(u(&o["resident_bytes"]), resident, "{o}");
        assert_eq!(u(&o["swap_bytes"]), 0, "{o}");
        o
    };

    let o = check(&anon.identity(), "anon_shared", 4 * HUGE, 2 * HUGE);
    assert_eq!(owner_pid(o), Some(me));
    assert_eq!(holders(o), vec![map(me)]);

    let o = check(&fd_identity(memfd.as_raw_fd()), "memfd", 4 * HUGE, 3 * HUGE);
    assert_eq!(owner_pid(o), Some(me));
    assert_eq!(sorted(holders(o)), sorted(vec![map(me), fd(me)]));
    assert!(
        o["name"].as_str().unwrap().starts_with("shmwho-huge-"),
        "{o}"
    );

    let mount_point = mnt.dir.path().to_string_lossy().into_owned();
    let o = check(&file_map.identity(), "hugetlbfs", 2 * HUGE, HUGE);
    assert_eq!(owner_pid(o), Some(me));
    assert_eq!(holders(o), vec![map(me)]);
    assert_eq!(o["path"], mnt.path("mapped").to_string_lossy().as_ref());
    assert_eq!(o["mount_point"], mount_point.as_str());

    let o = check(
        &fd_identity(open_file.as_raw_fd()),
        "hugetlbfs",
        2 * HUGE,
        2 * HUGE,
    );
    assert_eq!(owner_pid(o), Some(me));
    assert_eq!(holders(o), vec![fd(me)]);

    let o = check(
        &path_identity(&mnt.path("unheld")),
        "hugetlbfs",
        2 * HUGE,
        HUGE,
    );
    assert!(holders(o).is_empty(), "{o}");
    assert_eq!(owner_pid(o), None);
    assert_eq!(o["path"], mnt.path("unheld").to_string_lossy().as_ref());

    // Ours: 2 + 3 + 1 + 2 + 1 huge pages, all explained, all in use in the pools. Other runs
    // on this host hold huge pages too, so the block is at least ours.
    let ours = 9 * HUGE;
    let h = &doc["hugetlb"];
    assert!(u(&h["explained_bytes"]) >= ours, "{h}");
    assert!(u(&h["used_bytes"]) >= ours, "{h}");
    assert_eq!(
        h["unexplained_bytes"].as_i64().unwrap(),
        u(&h["used_bytes"]) as i64 - u(&h["explained_bytes"]) as i64,
        "{h}"
    );
    let explained_by_list: u64 = objects(&doc)
        .iter()
        .filter(|o| o["hugetlb"] == true)
        .map(|o| u(&o["resident_bytes"]))
        .sum();
    assert_eq!(u(&h["explained_bytes"]), explained_by_list, "{h}");
    // Huge pages are not Shmem: not in the objects' Shmem total either.
    let shmem_listed: u64 = objects(&doc)
        .iter()
        .filter(|o| o["hugetlb"] != true)
        .map(|o| u(&o["resident_bytes"]))
        .sum();
    assert_eq!(u(&doc["objects_resident_bytes"]), shmem_listed);

    // The table's second reconciliation.
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Huge pages in use (/sys/kernel/mm/hugepages)"),
        "{text}"
    );
    assert!(text.contains("hugetlbfs"), "{text}");

    // `--kind hugetlbfs` lists our three files and nothing else of ours.
    let doc = json(&["--json", "--kind", "hugetlbfs"]);
    assert!(objects(&doc).iter().all(|o| o["kind"] == "hugetlbfs"));
    assert!(objects(&doc)
        .iter()
        .any(|o| o["path"] == mnt.path("unheld").to_string_lossy().as_ref()));
}

/// Base-page objects carry the base page size.
#[test]
fn ordinary_objects_have_the_base_page_size() {
    let region = SharedRegion::new(3);
    // SAFETY: inside our own writable mapping.
    unsafe { std::ptr::write_volatile(region.addr() as *mut u8, 1) };
    let doc = objects_doc();
    let Some(o) = find_inode(&doc, &region.identity()) else {
        // Unprivileged, anonymous shared memory cannot be reached to be listed by inode.
        assert!(!is_root(), "own region not listed as root");
        return;
    };
    assert_eq!(u(&o["page_size_bytes"]), page());
    assert!(o.get("hugetlb").is_none() || o["hugetlb"] == false, "{o}");
}

/// An attached SHM_HUGETLB segment: its mapping lives on the internal hugetlbfs mount, and is
/// still its holder; its page size is the huge page's.
#[test]
fn attached_shm_hugetlb_segment_has_its_holder_and_page_size() {
    if !require_root("reserves huge pages (given back afterwards)") {
        return;
    }
    let Some(_pool) = Reserved::add(4) else {
        common::skip("could not reserve 2 MiB huge pages");
        return;
    };
    // SAFETY: plain syscall.
    let shmid = unsafe {
        libc::shmget(
            libc::IPC_PRIVATE,
            (2 * HUGE) as usize,
            libc::IPC_CREAT | libc::SHM_HUGETLB | 0o600,
        )
    };
    assert!(shmid >= 0, "shmget: {}", std::io::Error::last_os_error());
    let seg = SysvSeg::adopt(shmid).unwrap();
    // SAFETY: attaching our own segment at an address the kernel picks.
    let p = unsafe { libc::shmat(shmid, std::ptr::null(), 0) };
    assert_ne!(p as isize, -1, "shmat: {}", std::io::Error::last_os_error());
    // SAFETY: our own attachment; other tests' forks must not inherit it. Then one huge page
    // is written.
    unsafe {
        libc::madvise(p, (2 * HUGE) as usize, libc::MADV_DONTFORK);
        std::ptr::write_volatile(p as *mut u8, 1);
    }
    let doc = objects_doc();
    // SAFETY: detaching what we attached.
    unsafe { libc::shmdt(p) };
    let o = find_shmid(&doc, seg.shmid).expect("listed");
    assert_eq!(o["kind"], "sysv");
    assert_eq!(u(&o["page_size_bytes"]), HUGE, "{o}");
    assert_eq!(o["hugetlb"], true, "{o}");
    assert_eq!(u(&o["size_bytes"]), 2 * HUGE, "{o}");
    assert_eq!(u(&o["resident_bytes"]), HUGE, "{o}");
    assert_eq!(holders(o), vec![map(my_pid())], "{o}");
    assert_eq!(owner_pid(o), Some(my_pid()));
}

/// `show` pictures a hugetlb object in its huge pages: the holder's mapped ranges count huge
/// pages, and the page text says why the resident pages' places are not known.
#[test]
fn show_pictures_hugetlb_memory_in_huge_pages() {
    if !require_root("reserves huge pages (given back afterwards)") {
        return;
    }
    let Some(_pool) = Reserved::add(6) else {
        common::skip("could not reserve 2 MiB huge pages");
        return;
    };
    let anon = Mapping::new(None, 4 * HUGE);
    anon.touch(0);
    anon.touch(3);
    let (dev, ino) = anon.identity();
    let id = format!("inode:{dev}:{ino}");
    let doc = json(&["show", &id, "--json"]);
    assert_eq!(u(&doc["page_size"]), HUGE, "{doc}");
    assert_eq!(u(&doc["pages"]), 4, "{doc}");
    assert_eq!(u(&doc["object"]["page_size_bytes"]), HUGE);
    assert_eq!(u(&doc["object"]["resident_bytes"]), 2 * HUGE);
    let mine: Vec<&serde_json::Value> = doc["holders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["pid"] == my_pid())
        .collect();
    assert_eq!(mine.len(), 1, "{doc}");
    assert_eq!(
        mine[0]["mapped_ranges"],
        serde_json::json!([[0, 1], [3, 1]])
    );
    assert_eq!(u(&mine[0]["mapped_bytes"]), 2 * HUGE);
    let out = run(&["show", &id, "--width", "90"]);
    assert!(out.status.success(), "{out:?}");
}

//! Helpers for the integration tests: real kernel objects of known size, children that touch
//! them, and runs of the real binary.
//!
//! Tests in one binary run in parallel threads of one process, so a forked child would inherit
//! every other test's mappings and fds and show up as an extra holder of them. Three rules keep
//! each test's holders exact:
//! - every mapping made here is `MADV_DONTFORK`; it is switched to `MADV_DOFORK` only for the
//!   fork that is meant to inherit it, under [`lock`];
//! - a child closes every inherited fd except the ones it was given (`close_range`) before the
//!   parent releases [`lock`];
//! - every run of the binary holds [`lock`] while it runs, so no child is mid-fork (or
//!   mid-`posix_spawn`, sharing our mm) while a scan reads `/proc`.
//!
//! Every fd made here is `O_CLOEXEC`, so the scanning `shmwho` never holds our objects itself.

#![allow(dead_code)]

mod binary;
mod children;
mod host;
mod objects;
mod region;
mod spawned;

#[allow(unused_imports)]
pub use binary::*;
#[allow(unused_imports)]
pub use children::*;
#[allow(unused_imports)]
pub use host::*;
#[allow(unused_imports)]
pub use objects::*;
#[allow(unused_imports)]
pub use region::*;
#[allow(unused_imports)]
pub use spawned::*;

use serde_json::Value;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

static LOCK: Mutex<()> = Mutex::new(());

/// Serializes process creation and scans within this test binary (see the module docs).
pub fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn page() -> u64 {
    rustix::param::page_size() as u64
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// True when the test may go on; otherwise the skip shows (a failure under CI=true, which runs
/// as root).
pub fn require_root(why: &str) -> bool {
    if is_root() {
        true
    } else {
        skip_missing(&format!("needs root ({why})"));
        false
    }
}

/// Says that (part of) the current test is skipped, where `cargo test` shows it: straight to
/// the process's stderr, which the test harness does not capture (it captures only
/// `eprintln!`), as `SKIPPED: test_name: reason`. `grep SKIPPED` on a run's output counts them.
pub fn skip(reason: &str) {
    use std::io::Write as _;
    let t = std::thread::current();
    let name = t.name().unwrap_or("?");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {name}: {reason}");
}

/// A skip because a tool or privilege the test needs is missing: under CI=true, where .ci/run
/// installs every tool and runs as root, that is a defect and the test fails.
pub fn skip_missing(reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {reason}: .ci/run installs every tool the tests need"
    );
    skip(reason);
}

pub fn my_pid() -> i64 {
    std::process::id() as i64
}

/// `<pid>-<n>`, unique within this machine for the life of this process.
pub fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn check(rc: libc::c_int, what: &str) -> libc::c_int {
    if rc < 0 {
        panic!("{what}: {}", std::io::Error::last_os_error());
    }
    rc
}

/// `st_dev` as the JSON prints it: `major:minor` in decimal.
pub fn dev_string(dev: u64) -> String {
    format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev))
}

/// (dev string, inode) of an open file.
pub fn fd_identity(fd: RawFd) -> (String, u64) {
    // SAFETY: fd is open for the duration of the call (borrowed by the caller).
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let st = rustix::fs::fstat(bfd).expect("fstat");
    (dev_string(st.st_dev), st.st_ino)
}

pub fn path_identity(p: &Path) -> (String, u64) {
    let st = rustix::fs::stat(p).expect("stat");
    (dev_string(st.st_dev), st.st_ino)
}

/// Writes `npages` pages of a non-zero pattern at page `first_page` of `fd`.
///
/// Through a `MADV_NOHUGEPAGE` mapping when the pages lie inside the file: with shmem THP set
/// to `always` (another test run may set it), a `pwrite` of one byte into a memfd allocates a
/// whole 2 MiB huge page, past the end of a small file too (checked on 6.18), while a fault
/// through such a mapping allocates one base page. The mapping exists only under [`lock`],
/// so no scan sees this process hold the object and no fork inherits it.
pub fn pwrite_pages(fd: RawFd, first_page: u64, npages: u64) {
    let pg = page();
    // SAFETY: fd is open for the duration of the call (borrowed by the caller).
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let size = rustix::fs::fstat(bfd).expect("fstat").st_size as u64;
    if npages == 0 || (first_page + npages) * pg > size {
        return pwrite_pages_plain(fd, first_page, npages);
    }
    let len = (npages * pg) as usize;
    let _g = lock();
    // SAFETY: a fresh shared mapping of the caller's file, inside its size.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            (first_page * pg) as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        // Not mappable for writing (opened read-only, sealed): write as before.
        drop(_g);
        return pwrite_pages_plain(fd, first_page, npages);
    }
    // SAFETY: the mapping made above.
    check(
        unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) },
        "madvise",
    );
    no_huge_pages(p as usize, len);
    // SAFETY: p..p+len is the writable mapping made above, inside the file; then unmapped.
    unsafe {
        std::ptr::write_bytes(p.cast::<u8>(), 0x5a, len);
        libc::munmap(p, len);
    }
}

fn pwrite_pages_plain(fd: RawFd, first_page: u64, npages: u64) {
    let buf = vec![0x5au8; (npages * page()) as usize];
    let mut done = 0usize;
    while done < buf.len() {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe {
            libc::pwrite(
                fd,
                buf[done..].as_ptr().cast(),
                buf.len() - done,
                (first_page * page()) as libc::off_t + done as libc::off_t,
            )
        };
        check(n as libc::c_int, "pwrite");
        done += n as usize;
    }
}

pub fn ftruncate(fd: RawFd, len: u64) {
    // SAFETY: plain syscall on an fd we own.
    check(
        unsafe { libc::ftruncate(fd, len as libc::off_t) },
        "ftruncate",
    );
}

/// `MADV_NOHUGEPAGE` on a mapping, so a fault allocates one base page whatever
/// `shmem_enabled` says (another test run may set it to `always`): a test's arithmetic in
/// pages then holds. Async-signal-safe (children call it). The flag is kept across fork.
pub fn no_huge_pages(addr: usize, len: usize) {
    // SAFETY: advice on a mapping the caller owns; it changes no contents.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE) };
    if rc != 0 {
        // SAFETY: exiting; in the parent a failing test is better than a wrong one.
        unsafe { libc::_exit(119) };
    }
}

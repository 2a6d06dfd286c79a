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

/// True when the test may go on; prints the skip reason otherwise.
pub fn require_root(why: &str) -> bool {
    if is_root() {
        true
    } else {
        eprintln!("skipped: needs root ({why})");
        false
    }
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
pub fn pwrite_pages(fd: RawFd, first_page: u64, npages: u64) {
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

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

use serde_json::Value;
use std::ffi::CString;
use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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

// ---------------------------------------------------------------------------------------------
// Anonymous shared mappings

/// `mmap(MAP_SHARED|MAP_ANONYMOUS)`, never touched by the test process; munmap on drop.
pub struct SharedRegion {
    addr: usize,
    len: usize,
}

// SAFETY: the region is only an address range here; tests never dereference it in the parent.
unsafe impl Send for SharedRegion {}
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    pub fn new(pages: u64) -> SharedRegion {
        let len = (pages * page()) as usize;
        let _g = lock();
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the mapping made above.
        check(
            unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) },
            "madvise",
        );
        SharedRegion {
            addr: p as usize,
            len,
        }
    }

    pub fn addr(&self) -> usize {
        self.addr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// (dev string, inode) from this process's `/proc/self/maps` line for the region.
    pub fn identity(&self) -> (String, u64) {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("read maps");
        let prefix = format!("{:x}-{:x} ", self.addr, self.addr + self.len);
        let line = maps
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("region {prefix} not in /proc/self/maps"));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&f[1][3..4], "s", "not a shared mapping: {line}");
        let (maj, min) = f[3].split_once(':').unwrap();
        let dev = format!(
            "{}:{}",
            u32::from_str_radix(maj, 16).unwrap(),
            u32::from_str_radix(min, 16).unwrap()
        );
        (dev, f[4].parse().unwrap())
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping this value owns.
        unsafe {
            libc::munmap(self.addr as *mut libc::c_void, self.len);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Children

/// What a child does after its closure returned and its value was sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum After {
    /// Stay alive (holding what it maps) until the guard kills it.
    Pause,
    /// `_exit(0)`; `fork_child` reaps it before returning.
    Exit,
}

/// A forked child: SIGKILLed and reaped on drop.
pub struct Child {
    pid: libc::pid_t,
    /// What the child's closure returned.
    pub value: i64,
    reaped: bool,
}

impl Child {
    pub fn pid(&self) -> i64 {
        self.pid as i64
    }

    /// Kills and reaps the child now (its mappings and fds are gone when this returns).
    pub fn kill(mut self) {
        self.reap(true);
    }

    fn reap(&mut self, kill: bool) {
        if self.reaped {
            return;
        }
        self.reaped = true;
        // SAFETY: plain syscalls on our own child.
        unsafe {
            if kill {
                libc::kill(self.pid, libc::SIGKILL);
            }
            let mut status = 0;
            while libc::waitpid(self.pid, &mut status, 0) < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.reap(true);
    }
}

fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: buf[got..] is valid for writing.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            panic!("read from child pipe: {}", std::io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    got
}

/// Async-signal-safe write of all of `buf` (child side).
unsafe fn write_all_raw(fd: RawFd, buf: &[u8]) {
    let mut done = 0;
    while done < buf.len() {
        let n = libc::write(fd, buf[done..].as_ptr().cast(), buf.len() - done);
        if n <= 0 {
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            libc::_exit(120);
        }
        done += n as usize;
    }
}

/// Forks a child that runs `f` and sends its return value back.
///
/// `f` runs in a child of a multi-threaded process: it must use raw syscalls only (no
/// allocation, no printing, no panics) and capture only plain `Copy` values (a captured
/// `String` would be freed in the child when `f` returns); helpers in [`child`] qualify. It exits with `_exit` to
/// report failure. The child inherits only the regions in `inherit` and the fds in `keep_fds`
/// (plus 0-2); it dies with the forking thread (`PR_SET_PDEATHSIG`).
pub fn fork_child<F: FnOnce() -> i64>(
    inherit: &[&SharedRegion],
    keep_fds: &[RawFd],
    after: After,
    f: F,
) -> Child {
    let guard = lock();
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for two ints.
    check(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        "pipe2",
    );
    let (rfd, wfd) = (fds[0], fds[1]);
    let mut keep: Vec<RawFd> = keep_fds.iter().copied().chain([wfd]).collect();
    keep.sort_unstable();
    keep.dedup();
    let parent = std::process::id() as libc::pid_t;
    for r in inherit {
        // SAFETY: switching inheritance of a mapping we own.
        check(
            unsafe { libc::madvise(r.addr as *mut _, r.len, libc::MADV_DOFORK) },
            "madvise",
        );
    }
    // SAFETY: the child runs only raw syscalls and `f` (see the contract above), then _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Child.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::getppid() != parent {
                libc::_exit(121);
            }
            let mut lo: u32 = 3;
            for &k in keep.iter() {
                if k < 3 {
                    continue;
                }
                let k = k as u32;
                if k > lo {
                    libc::syscall(libc::SYS_close_range, lo, k - 1, 0u32);
                }
                lo = k + 1;
            }
            libc::syscall(libc::SYS_close_range, lo, u32::MAX, 0u32);
            write_all_raw(wfd, b"S");
            let v = f();
            write_all_raw(wfd, &v.to_ne_bytes());
            match after {
                After::Exit => libc::_exit(0),
                After::Pause => loop {
                    libc::pause();
                },
            }
        }
    }
    let fork_err = std::io::Error::last_os_error();
    for r in inherit {
        // SAFETY: as above.
        unsafe { libc::madvise(r.addr as *mut _, r.len, libc::MADV_DONTFORK) };
    }
    // SAFETY: closing our copy of the write end; the child has its own.
    unsafe { libc::close(wfd) };
    // SAFETY: rfd is ours from pipe2 above.
    let rfd = unsafe { OwnedFd::from_raw_fd(rfd) };
    assert!(pid > 0, "fork: {fork_err}");
    let mut child = Child {
        pid,
        value: 0,
        reaped: false,
    };
    let mut started = [0u8; 1];
    let ok = read_full(rfd.as_raw_fd(), &mut started) == 1;
    drop(guard);
    let mut v = [0u8; 8];
    if !ok || read_full(rfd.as_raw_fd(), &mut v) != 8 {
        let mut status = 0;
        // SAFETY: our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        child.reaped = true;
        panic!(
            "child {pid} failed before reporting (exit code {}, signal {})",
            libc::WEXITSTATUS(status),
            if libc::WIFSIGNALED(status) {
                libc::WTERMSIG(status)
            } else {
                0
            }
        );
    }
    child.value = i64::from_ne_bytes(v);
    if after == After::Exit {
        child.reap(false);
    }
    child
}

/// Async-signal-safe building blocks for child closures.
pub mod child {
    /// Writes one non-zero byte at the start of pages `first..first+n` of the memory at `addr`.
    pub fn touch(addr: usize, first: u64, n: u64, page: u64) {
        for i in first..first + n {
            // SAFETY: callers pass a writable shared mapping that covers these pages.
            unsafe { core::ptr::write_volatile((addr + (i * page) as usize) as *mut u8, 0xa5) };
        }
    }

    /// `mmap(MAP_SHARED)` of `fd` (or anonymous when `fd` is -1), or `_exit(code)`.
    pub fn map(fd: i32, len: usize, code: i32) -> usize {
        let flags = if fd < 0 {
            libc::MAP_SHARED | libc::MAP_ANONYMOUS
        } else {
            libc::MAP_SHARED
        };
        // SAFETY: a fresh mapping.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            // SAFETY: exiting the child.
            unsafe { libc::_exit(code) };
        }
        p as usize
    }

    /// [`map`], then closes `fd`: the child holds the object only through the mapping.
    pub fn map_and_close(fd: i32, len: usize, code: i32) -> usize {
        let p = map(fd, len, code);
        // SAFETY: the fd was handed to this child; the mapping keeps the file.
        unsafe { libc::close(fd) };
        p
    }

    /// `shmat` or `_exit(code)`.
    pub fn shmat(shmid: i32, code: i32) -> usize {
        // SAFETY: attaching a segment at a kernel-chosen address.
        let p = unsafe { libc::shmat(shmid, core::ptr::null(), 0) };
        if p as isize == -1 {
            // SAFETY: exiting the child.
            unsafe { libc::_exit(code) };
        }
        p as usize
    }

    /// `nanosleep`, ignoring interruptions.
    pub fn sleep(t: &libc::timespec) {
        // SAFETY: plain syscall.
        unsafe { libc::nanosleep(t, core::ptr::null_mut()) };
    }

    /// Becomes uid/gid `id` with no supplementary groups (raw syscalls: only this thread
    /// exists), stays dumpable so the same user may read its `/proc` files, and re-arms the
    /// parent-death signal (a credential change clears it). `_exit(code)` on failure.
    pub fn become_user(id: u32, code: i32) {
        // SAFETY: plain syscalls.
        unsafe {
            if libc::syscall(
                libc::SYS_setgroups,
                0usize,
                core::ptr::null::<libc::gid_t>(),
            ) != 0
                || libc::syscall(libc::SYS_setresgid, id, id, id) != 0
                || libc::syscall(libc::SYS_setresuid, id, id, id) != 0
                || libc::prctl(libc::PR_SET_DUMPABLE, 1 as libc::c_ulong) != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0
            {
                libc::_exit(code);
            }
        }
    }

    /// Writes one byte into each page `first..first+n` of `fd` (allocating the whole page).
    pub fn pwrite_pages(fd: i32, first: u64, n: u64, page: u64, code: i32) {
        let b = [0x5au8; 1];
        for i in first..first + n {
            // SAFETY: b is valid for one byte.
            let w = unsafe { libc::pwrite(fd, b.as_ptr().cast(), 1, (i * page) as libc::off_t) };
            if w != 1 {
                fail(code);
            }
        }
    }

    pub fn fail(code: i32) -> ! {
        // SAFETY: exiting the child.
        unsafe { libc::_exit(code) }
    }
}

// ---------------------------------------------------------------------------------------------
// SysV, memfd, POSIX shm, tmpfs

/// A SysV segment removed (`IPC_RMID`) on drop, if it is still the one we know.
pub struct SysvSeg {
    pub shmid: i32,
    cpid: libc::pid_t,
}

impl SysvSeg {
    /// `shmget(IPC_PRIVATE, size)` by this process.
    pub fn new(size: u64) -> SysvSeg {
        // SAFETY: plain syscall.
        let shmid = check(
            unsafe { libc::shmget(libc::IPC_PRIVATE, size as usize, libc::IPC_CREAT | 0o600) },
            "shmget",
        );
        SysvSeg::adopt(shmid).expect("segment just created")
    }

    /// Takes charge of a segment someone else created (a child).
    pub fn adopt(shmid: i32) -> Option<SysvSeg> {
        let ds = Self::stat(shmid)?;
        Some(SysvSeg {
            shmid,
            cpid: ds.shm_cpid,
        })
    }

    fn stat(shmid: i32) -> Option<libc::shmid_ds> {
        // SAFETY: shmid_ds is plain data, filled by the kernel.
        unsafe {
            let mut ds: libc::shmid_ds = std::mem::zeroed();
            (libc::shmctl(shmid, libc::IPC_STAT, &mut ds) == 0).then_some(ds)
        }
    }

    /// `IPC_RMID` now (the segment lives on while attached).
    pub fn remove(&self) {
        // SAFETY: plain syscall.
        check(
            unsafe { libc::shmctl(self.shmid, libc::IPC_RMID, std::ptr::null_mut()) },
            "shmctl(IPC_RMID)",
        );
    }

    /// Whether the segment still exists.
    pub fn exists(&self) -> bool {
        Self::stat(self.shmid).is_some_and(|ds| ds.shm_cpid == self.cpid)
    }
}

impl Drop for SysvSeg {
    fn drop(&mut self) {
        if self.exists() {
            // SAFETY: plain syscall.
            unsafe { libc::shmctl(self.shmid, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

/// A memfd (`MFD_CLOEXEC`); closed on drop.
pub struct Memfd {
    pub fd: OwnedFd,
    pub name: String,
}

impl Memfd {
    pub fn new(name: &str, size: u64) -> Memfd {
        let fd =
            rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC).expect("memfd_create");
        ftruncate(fd.as_raw_fd(), size);
        Memfd {
            fd,
            name: name.to_string(),
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn identity(&self) -> (String, u64) {
        fd_identity(self.raw())
    }
}

/// A POSIX shm object `/NAME`, `shm_unlink`ed on drop.
pub struct PosixShm {
    /// With the leading slash, as `shm_open` takes it.
    pub name: String,
    pub path: PathBuf,
    /// Our fd, until [`PosixShm::close`].
    pub fd: Option<OwnedFd>,
}

impl PosixShm {
    /// Creates `/shmwho-test-<unique><suffix>` of `size` bytes.
    pub fn new(suffix: &str, size: u64) -> PosixShm {
        let name = format!("/shmwho-test-{}{suffix}", unique());
        let c = CString::new(name.clone()).unwrap();
        // SAFETY: plain syscall with a valid C string.
        let fd = check(
            unsafe {
                libc::shm_open(
                    c.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                    0o600,
                )
            },
            "shm_open",
        );
        // SAFETY: fd is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        ftruncate(fd.as_raw_fd(), size);
        PosixShm {
            path: PathBuf::from(format!("/dev/shm{name}")),
            name,
            fd: Some(fd),
        }
    }

    /// A unique name for an object someone else (a child) creates; unlinked on drop all the
    /// same.
    pub fn reserve(suffix: &str) -> PosixShm {
        let name = format!("/shmwho-test-{}{suffix}", unique());
        PosixShm {
            path: PathBuf::from(format!("/dev/shm{name}")),
            name,
            fd: None,
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_ref().expect("open").as_raw_fd()
    }

    pub fn close(&mut self) {
        self.fd = None;
    }

    pub fn identity(&self) -> (String, u64) {
        path_identity(&self.path)
    }
}

impl Drop for PosixShm {
    fn drop(&mut self) {
        let c = CString::new(self.name.clone()).unwrap();
        // SAFETY: plain syscall with a valid C string.
        unsafe { libc::shm_unlink(c.as_ptr()) };
    }
}

/// A fresh tmpfs on a temporary directory (root only); lazily unmounted on drop.
pub struct TmpfsMount {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TmpfsMount {
    pub fn new(size_opt: &str) -> TmpfsMount {
        let dir = tempfile::Builder::new()
            .prefix("shmwho-test-tmpfs-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path().canonicalize().unwrap();
        let target = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let data = CString::new(format!("size={size_opt},mode=0700")).unwrap();
        // SAFETY: valid C strings.
        check(
            unsafe {
                libc::mount(
                    c"tmpfs".as_ptr(),
                    target.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    data.as_ptr().cast(),
                )
            },
            "mount tmpfs",
        );
        TmpfsMount { path, _dir: dir }
    }

    /// Creates `name` on the mount, `size` bytes long; returns its fd (O_CLOEXEC).
    pub fn create(&self, name: &str, size: u64) -> OwnedFd {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path.join(name))
            .expect("create tmpfs file");
        let fd: OwnedFd = f.into();
        ftruncate(fd.as_raw_fd(), size);
        fd
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let target = CString::new(self.path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid C string.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

// ---------------------------------------------------------------------------------------------
// Running the binary

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shmwho")
}

pub fn cmd() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("shmwho").expect("shmwho binary");
    c.timeout(Duration::from_secs(120));
    c
}

/// Runs the binary under [`lock`].
pub fn run(args: &[&str]) -> Output {
    let _g = lock();
    run_unlocked(args)
}

pub fn run_unlocked(args: &[&str]) -> Output {
    cmd().args(args).output().expect("run shmwho")
}

/// Runs with `args` (which should include `--json`), asserts success and parses stdout.
pub fn json(args: &[&str]) -> Value {
    parse_ok(args, &run(args))
}

pub fn parse_ok(args: &[&str], out: &Output) -> Value {
    assert!(
        out.status.success(),
        "shmwho {args:?} failed: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shmwho {args:?} printed invalid JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The objects view of the whole host.
pub fn objects_doc() -> Value {
    json(&["--json"])
}

pub fn objects(doc: &Value) -> &Vec<Value> {
    doc["objects"].as_array().expect("objects array")
}

/// The object with this (dev, inode), if listed.
pub fn find_inode<'a>(doc: &'a Value, id: &(String, u64)) -> Option<&'a Value> {
    objects(doc)
        .iter()
        .find(|o| o["kind"] != "sysv" && o["dev"] == id.0.as_str() && o["inode"] == id.1)
}

pub fn find_shmid(doc: &Value, shmid: i32) -> Option<&Value> {
    objects(doc)
        .iter()
        .find(|o| o["kind"] == "sysv" && o["shmid"] == shmid)
}

pub fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected an unsigned integer, got {v}"))
}

/// (pid, via) of each holder, sorted.
pub fn holders(obj: &Value) -> Vec<(i64, String)> {
    let mut h: Vec<(i64, String)> = obj["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .map(|h| {
            (
                h["pid"].as_i64().unwrap(),
                h["via"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    h.sort();
    h
}

pub fn owner_pid(obj: &Value) -> Option<i64> {
    (!obj["owner"].is_null()).then(|| obj["owner"]["pid"].as_i64().unwrap())
}

/// (pid, bytes) of each charge, sorted, zero charges left out.
pub fn charges(obj: &Value) -> Vec<(i64, u64)> {
    let mut c: Vec<(i64, u64)> = obj["charges"]
        .as_array()
        .expect("charges")
        .iter()
        .map(|c| (c["pid"].as_i64().unwrap(), u(&c["bytes"])))
        .filter(|c| c.1 > 0)
        .collect();
    c.sort();
    c
}

/// A process row of a procs document.
pub fn process(doc: &Value, pid: i64) -> Option<&Value> {
    doc["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["pid"] == pid)
}

pub fn sorted(mut v: Vec<(i64, String)>) -> Vec<(i64, String)> {
    v.sort();
    v
}

pub fn map(pid: i64) -> (i64, String) {
    (pid, "map".to_string())
}

pub fn fd(pid: i64) -> (i64, String) {
    (pid, "fd".to_string())
}

// ---------------------------------------------------------------------------------------------
// Long-running runs of the binary (lab, export) and HTTP/metrics helpers

/// A spawned process: SIGTERM on drop (the lab cleans up on it), then SIGKILL if it lingers;
/// always reaped.
pub struct Spawned {
    pub child: std::process::Child,
    /// The first line it printed on stdout.
    pub first_line: String,
}

impl Spawned {
    /// Starts `shmwho args` and waits for its first stdout line (the lab's ground truth, the
    /// exporter's address). Panics with its stderr if it exits first.
    pub fn start(args: &[&str]) -> Spawned {
        use std::io::BufRead as _;
        let mut child = {
            let _g = lock();
            std::process::Command::new(bin())
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn shmwho")
        };
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let n = std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or(0);
        let mut s = Spawned {
            child,
            first_line: line,
        };
        if n == 0 {
            s.stop();
            let mut err = String::new();
            if let Some(mut e) = s.child.stderr.take() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut err);
            }
            panic!("shmwho {args:?} exited before printing: {err}");
        }
        s
    }

    pub fn pid(&self) -> i64 {
        self.child.id() as i64
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.first_line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.first_line))
    }

    /// SIGTERM, up to 10 s for a clean exit, then SIGKILL; reaped either way.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `shmwho export --listen 127.0.0.1:0 ARGS`, and the `host:port` it serves on.
pub fn start_exporter(args: &[&str]) -> (Spawned, String) {
    let mut all = vec!["export", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let s = Spawned::start(&all);
    let addr = s
        .first_line
        .trim()
        .strip_prefix("shmwho: serving http://")
        .or_else(|| s.first_line.trim().strip_prefix("shmwho: serving https://"))
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line: {}", s.first_line))
        .to_string();
    (s, addr)
}

/// One HTTP exchange: sends `request` as is, reads until the server closes.
/// Returns (status, head, body).
pub fn http_raw(addr: &str, request: &[u8]) -> (u16, String, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request).expect("send request");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read response");
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

pub fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n").as_bytes(),
    )
}

/// One sample of a metrics text.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: String,
}

/// Samples of an OpenMetrics or Prometheus text; label values unescaped (`\\`, `\"`, `\n`).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let Some(brace) = line.find('{') else {
            let (name, value) = line.split_once(' ').expect("name value");
            out.push(Sample {
                name: name.into(),
                labels: Default::default(),
                value: value.trim().into(),
            });
            continue;
        };
        let name = &line[..brace];
        let mut labels = std::collections::BTreeMap::new();
        let mut it = line[brace + 1..].chars().peekable();
        loop {
            if it.peek() == Some(&'}') {
                it.next();
                break;
            }
            let key: String = it.by_ref().take_while(|&c| c != '=').collect();
            assert_eq!(it.next(), Some('"'), "label value in {line}");
            let mut val = String::new();
            loop {
                match it.next().expect("unterminated label value") {
                    '\\' => match it.next().expect("escape") {
                        'n' => val.push('\n'),
                        c => val.push(c),
                    },
                    '"' => break,
                    c => val.push(c),
                }
            }
            labels.insert(key.trim_start_matches(',').to_string(), val);
            if it.peek() == Some(&',') {
                it.next();
            }
        }
        let value: String = it.collect();
        out.push(Sample {
            name: name.into(),
            labels,
            value: value.trim().into(),
        });
    }
    out
}

/// The value of the object series with this kind, device and id.
pub fn object_metric(
    samples: &[Sample],
    metric: &str,
    kind: &str,
    dev: &str,
    id: &str,
) -> Option<u64> {
    samples
        .iter()
        .find(|s| {
            s.name == metric
                && s.labels.get("kind").map(String::as_str) == Some(kind)
                && s.labels.get("dev").map(String::as_str) == Some(dev)
                && s.labels.get("id").map(String::as_str) == Some(id)
        })
        .map(|s| s.value.parse().expect("integer value"))
}

// ---------------------------------------------------------------------------------------------
// Host settings, restored by guards

/// A swap file in the target directory, swapped on; swapped off and deleted on drop.
pub struct SwapFile {
    path: PathBuf,
    on: bool,
}

impl SwapFile {
    pub fn new(mib: usize) -> Result<SwapFile, String> {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("swap-{}", unique()));
        let mut s = SwapFile {
            path: path.clone(),
            on: false,
        };
        // Written, not sparse: swapon refuses files with holes.
        let mut f = std::fs::File::create(&path).map_err(|e| format!("create {path:?}: {e}"))?;
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..mib {
            f.write_all(&chunk)
                .map_err(|e| format!("write swap file: {e}"))?;
        }
        f.sync_all().map_err(|e| e.to_string())?;
        drop(f);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let ok = |c: &mut Command| run_within(c, 60) == Some(true);
        if !ok(Command::new("mkswap").arg(&path)) {
            return Err("mkswap failed (or is missing)".into());
        }
        if !ok(Command::new("swapon").arg(&path)) {
            return Err("swapon refused the file (no swap support here?)".into());
        }
        s.on = true;
        Ok(s)
    }
}

impl Drop for SwapFile {
    fn drop(&mut self) {
        // swapoff reads every swapped page back: bounded, so a host short of memory costs a
        // warning rather than a hung run.
        if self.on && run_within(Command::new("swapoff").arg(&self.path), 120) != Some(true) {
            eprintln!("warning: swapoff {:?} failed or ran over 120 s", self.path);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `cmd` (output discarded) for at most `secs` seconds, killing it then. Some(success) when
/// it finished, None when it could not start or ran over.
pub fn run_within(cmd: &mut Command, secs: u64) -> Option<bool> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st.success()),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// `shmem_enabled` set to a mode; the previous mode is restored on drop.
pub struct ShmemThp {
    saved: String,
}

pub const SHMEM_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";

impl ShmemThp {
    pub fn set(mode: &str) -> Option<ShmemThp> {
        let text = std::fs::read_to_string(SHMEM_ENABLED).ok()?;
        let saved = text
            .split_whitespace()
            .find(|w| w.starts_with('['))?
            .trim_matches(['[', ']'])
            .to_string();
        std::fs::write(SHMEM_ENABLED, mode).ok()?;
        Some(ShmemThp { saved })
    }
}

impl Drop for ShmemThp {
    fn drop(&mut self) {
        let _ = std::fs::write(SHMEM_ENABLED, &self.saved);
    }
}

/// Writes a self-signed certificate for 127.0.0.1 and localhost (`server.crt`, `server.key`)
/// and a web config in exporter-toolkit's format with one bcrypt user into `dir`; returns the
/// config's path.
pub fn write_web_config(dir: &Path, user: &str, password: &str) -> PathBuf {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("self-signed certificate");
    std::fs::write(dir.join("server.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), ck.signing_key.serialize_pem()).unwrap();
    // Cost 4, the least bcrypt allows: the test checks the scheme, not the cost.
    let hash = bcrypt::hash(password, 4).unwrap();
    let web = dir.join("web.yml");
    // Relative file names: exporter-toolkit reads them from the config's directory.
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  {user}: '{hash}'\n"
        ),
    )
    .unwrap();
    web
}

/// An `Authorization` header value for basic auth.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// One HTTPS exchange trusting only `ca_pem`; Err when TLS fails. (status, head, body).
pub fn https_raw(
    addr: &str,
    ca_pem: &str,
    request: &[u8],
) -> Result<(u16, String, String), String> {
    use rustls::pki_types::pem::PemObject as _;
    use std::io::{Read as _, Write as _};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
    let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| e.to_string())?;
    let sock = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(request).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    tls.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, head.to_string(), body.to_string()))
}

//! SysV segments, memfds, POSIX shm objects and tmpfs mounts, removed on drop (also on panic).

#[allow(unused_imports)]
use super::*;

/// A SysV segment removed (`IPC_RMID`) on drop, if it is still the one we know.
pub struct SysvSeg {
    pub shmid: i32,
    pub(super) cpid: libc::pid_t,
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

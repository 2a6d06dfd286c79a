//! Guards for tests that fork children over real mappings: the mapping is unmapped and the
//! child killed and reaped even when an assertion fails.

/// A mapping `(address, length)` made with `mmap`, unmapped on drop.
pub(crate) struct Region(pub usize, pub usize);

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: a mapping its maker made and hands over, not used after this.
        unsafe { libc::munmap(self.0 as *mut libc::c_void, self.1) };
    }
}

/// Our own child, killed and reaped on drop.
pub(crate) struct Reaped(pub libc::pid_t);

impl Drop for Reaped {
    fn drop(&mut self) {
        // SAFETY: our own child, killed and reaped once.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), 0);
        }
    }
}

/// A child forked to run `touch` (which must be async-signal-safe: writes to memory only)
/// and then pause, returned once it has run it.
pub(crate) fn fork_paused(touch: impl FnOnce()) -> Reaped {
    let (rx, tx) = std::io::pipe().unwrap();
    // SAFETY: the child runs `touch`, writes to the pipe and pauses (async-signal-safe only)
    // and never returns.
    let pid = match unsafe { libc::fork() } {
        0 => {
            touch();
            // SAFETY: raw syscalls in the child.
            unsafe {
                libc::write(rustix::fd::AsRawFd::as_raw_fd(&tx), b"x".as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        pid => pid,
    };
    let child = Reaped(pid);
    drop(tx);
    assert_eq!(std::io::Read::read(&mut &rx, &mut [0u8; 1]).unwrap(), 1);
    child
}

/// Held by a test while it has a shared mapping of a memory object in this process, and by a
/// test whose forked child must map no object but its own (a child inherits every mapping of
/// ours, other tests' too).
pub(crate) fn hold_mappings() -> std::sync::MutexGuard<'static, ()> {
    static MAPPINGS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    MAPPINGS.lock().unwrap_or_else(|e| e.into_inner())
}

//! The one place shmwho handles signals: a termination signal sets a flag that the loops of
//! `top`, `export --loop` and `lab` poll, so each can restore the terminal or remove what it
//! created before exiting. Handlers are unregistered when the guard drops.

use signal_hook::SigId;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// SIGINT and SIGTERM: what ends a long-running command (the exporter's loop).
pub const INTERRUPT: [c_int; 2] = [libc::SIGINT, libc::SIGTERM];
/// INTERRUPT plus SIGHUP (the terminal went away): what ends the lab.
pub const HANGUP: [c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
/// HANGUP plus SIGQUIT: everything that would otherwise leave `top`'s terminal in raw mode.
pub const TERMINAL: [c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Signals that set a flag instead of ending the process, until dropped.
#[derive(Debug)]
pub struct StopFlag {
    flag: Arc<AtomicBool>,
    ids: Vec<SigId>,
}

impl StopFlag {
    /// Sets a new flag on any of `signals`.
    pub fn register(signals: &[c_int]) -> std::io::Result<StopFlag> {
        StopFlag::register_on(Arc::new(AtomicBool::new(false)), signals)
    }

    /// Sets `flag` (shared with other threads, or other events that also stop the loop) on any
    /// of `signals`.
    pub fn register_on(flag: Arc<AtomicBool>, signals: &[c_int]) -> std::io::Result<StopFlag> {
        let mut guard = StopFlag {
            flag,
            ids: Vec::new(),
        };
        for &sig in signals {
            // On error the guard drops and unregisters what was registered so far.
            guard
                .ids
                .push(signal_hook::flag::register(sig, Arc::clone(&guard.flag))?);
        }
        Ok(guard)
    }

    /// Whether one of the signals arrived.
    pub fn raised(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag, for threads that poll it.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }
}

impl Drop for StopFlag {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Restores the default action of `signals` in a freshly forked child, whose inherited
/// handlers would only set the parent's flag in the child's copy of memory. Async-signal-safe:
/// callable between fork and exec or exit.
pub fn reset_in_child(signals: &[c_int]) {
    for &sig in signals {
        // SAFETY: setting a default disposition runs no handler code, and signal(2) is
        // async-signal-safe.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Ignores `signals` in a freshly forked child that must outlive whatever ends its parent
/// (the lab's watcher). SIG_IGN survives exec. Async-signal-safe.
pub fn ignore_in_child(signals: &[c_int]) {
    for &sig in signals {
        // SAFETY: setting SIG_IGN runs no handler code, and signal(2) is async-signal-safe.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_sets_the_flag_until_dropped() {
        // SIGURG is ignored by default and used by nothing else in these tests.
        let guard = StopFlag::register(&[libc::SIGURG]).unwrap();
        assert!(!guard.raised());
        // SAFETY: raise sends a signal to this thread; the handler only stores to an atomic.
        assert_eq!(unsafe { libc::raise(libc::SIGURG) }, 0);
        assert!(guard.raised());
        let flag = guard.flag();
        drop(guard);
        flag.store(false, Ordering::SeqCst);
        // Unregistered: SIGURG's default action (ignore) applies and the flag stays down.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::raise(libc::SIGURG) }, 0);
        assert!(!flag.load(Ordering::SeqCst));
    }
}

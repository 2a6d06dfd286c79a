//! Running with privileges the caller does not have (file capabilities, README "Restricted
//! install"), and giving them up.
//!
//! Such a run is *elevated*: the kernel set `AT_SECURE` at exec because the binary's file
//! capabilities (or a setuid bit) raised the process above its caller. Capabilities granted by
//! the caller itself (ambient, as a service manager does) do not set it: that caller holds them.
//!
//! An elevated run keeps its capabilities only in the permitted set; they are effective only
//! inside [`with_caps`] (the scan), so every path the caller names is opened with the caller's
//! own rights, and [`drop_all`] empties every set once the scan is done. Capabilities are per
//! thread: threads started inside [`with_caps`] inherit them, threads started outside do not.

use rustix::thread::{CapabilitySet, CapabilitySets};
use std::sync::OnceLock;

/// A request an elevated run refuses: exit status 2, like a usage error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The kernel marked this exec as gaining privilege (`AT_SECURE`), or the ids differ.
pub fn elevated() -> bool {
    static ELEVATED: OnceLock<bool> = OnceLock::new();
    *ELEVATED.get_or_init(|| {
        // SAFETY: getauxval reads the auxiliary vector the kernel passed at exec; no pointers.
        let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
        let ids_differ = rustix::process::getuid() != rustix::process::geteuid()
            || rustix::process::getgid() != rustix::process::getegid();
        secure || ids_differ
    })
}

/// Called first thing: an elevated run refuses a setuid install (its files would be opened as
/// root) and clears its effective capabilities, so nothing happens with them by accident.
pub fn init() -> anyhow::Result<()> {
    if !elevated() {
        return Ok(());
    }
    if rustix::process::getuid() != rustix::process::geteuid()
        || rustix::process::getgid() != rustix::process::getegid()
    {
        return Err(Refused(
            "refusing to run setuid or setgid: install with file capabilities instead (README: Restricted install)"
                .into(),
        )
        .into());
    }
    set_effective(false)?;
    Ok(())
}

/// Refuses `what` in an elevated run (one line, exit 2).
pub fn refuse_when_elevated(what: &str) -> anyhow::Result<()> {
    if elevated() {
        return Err(Refused(format!(
            "{what} is not available when shmwho runs with file capabilities its caller does not hold (README: Restricted install)"
        ))
        .into());
    }
    Ok(())
}

/// `--proc-root` other than `/proc`, or `--host-root` other than `/`, would aim the
/// capabilities at a directory of the caller's choosing.
pub fn check_paths(paths: &crate::collect::HostPaths) -> anyhow::Result<()> {
    check_roots(&paths.proc_root, &paths.mount_root)
}

/// As [`check_paths`], on the two flags' values.
pub fn check_roots(proc_root: &std::path::Path, host_root: &std::path::Path) -> anyhow::Result<()> {
    if proc_root != std::path::Path::new("/proc") {
        refuse_when_elevated("--proc-root")?;
    }
    if host_root != std::path::Path::new("/") {
        refuse_when_elevated("--host-root")?;
    }
    Ok(())
}

/// Runs `f` with the permitted capabilities effective on this thread (and the threads it
/// starts); in a run that is not elevated, just runs `f`.
pub fn with_caps<R>(f: impl FnOnce() -> R) -> R {
    if !elevated() {
        return f();
    }
    // A failure leaves the caps off: the scan then sees what the caller sees, never more.
    let _ = set_effective(true);
    struct Lower;
    impl Drop for Lower {
        fn drop(&mut self) {
            let _ = set_effective(false);
        }
    }
    let _lower = Lower;
    f()
}

/// Empties the effective, permitted, inheritable and ambient sets of this thread for good.
/// A no-op for a run that is not elevated: whoever started it gave it what it has.
pub fn drop_all() -> anyhow::Result<()> {
    if !elevated() {
        return Ok(());
    }
    let _ = rustix::thread::clear_ambient_capability_set();
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| anyhow::anyhow!("cannot drop capabilities: {e}"))
}

fn set_effective(on: bool) -> anyhow::Result<()> {
    let mut sets = rustix::thread::capabilities(None)
        .map_err(|e| anyhow::anyhow!("cannot read capabilities: {e}"))?;
    sets.effective = if on {
        sets.permitted
    } else {
        CapabilitySet::empty()
    };
    rustix::thread::set_capabilities(None, sets)
        .map_err(|e| anyhow::anyhow!("cannot set capabilities: {e}"))
}

/// The one scan of a command: collected with the capabilities, then redacted for the caller
/// when the run is elevated (see [`crate::redact`]).
pub fn scan(opts: &crate::collect::Options) -> anyhow::Result<crate::model::Snapshot> {
    // Any host path but the real ones would aim the capabilities at the caller's choice.
    if opts.paths != crate::collect::HostPaths::default() {
        refuse_when_elevated("--proc-root and --host-root")?;
    }
    // Capabilities gained at exec are not the caller's: no BPF with them.
    let opts = &crate::collect::Options {
        bpf: opts.bpf && !elevated(),
        ..opts.clone()
    };
    let snap = with_caps(|| crate::collect::collect(opts))?;
    if !elevated() {
        return Ok(snap);
    }
    // Probed with the caps off: what the caller could see and open itself.
    let view = crate::redact::CallerView::probe(&snap, &opts.paths.proc_root);
    Ok(crate::redact::redact(snap, &view))
}

/// [`scan`] for a command that scans once: every capability is gone when it returns, before
/// anything is rendered or written.
pub fn scan_once(opts: &crate::collect::Options) -> anyhow::Result<crate::model::Snapshot> {
    let snap = scan(opts)?;
    drop_all()?;
    Ok(snap)
}

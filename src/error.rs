//! Errors of the library. A process that vanishes mid-scan is not one of them: it is counted in
//! [`crate::model::ScanNotes`].

use std::path::PathBuf;

/// Why a scan could not complete.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the scan needs could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said. In the message, not the error chain (a field named `source`
        /// would be both), so that `{:#}` does not print it twice.
        cause: std::io::Error,
    },
    /// A file the scan needs was read but not understood.
    #[error("cannot parse {path}: {what}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What in it was not understood.
        what: String,
    },
    /// EMFILE or ENFILE during the scan: processes would be skipped as if they had exited.
    #[error("too many open files: raise ulimit -n (the limit here is {limit})")]
    TooManyOpenFiles {
        /// The soft RLIMIT_NOFILE, or "unlimited".
        limit: String,
    },
}

/// Whether `e` says this process (EMFILE) or the system (ENFILE) ran out of file descriptors.
pub fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

impl Error {
    /// The error for an exhausted descriptor table, with the soft limit named.
    pub fn too_many_open_files() -> Error {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .map_or_else(|| "unlimited".to_string(), |n| n.to_string());
        Error::TooManyOpenFiles { limit }
    }
}

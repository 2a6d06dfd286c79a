//! The kernel's own BTF, read once per process.

/// The kernel's BTF (5.4 MiB here), mapped where the kernel allows (6.16+), else read: a read
/// goes 4 KiB at a time into a buffer that must be faulted in, ~4 ms per scan here.
pub(super) enum Vmlinux {
    Mapped(*mut std::ffi::c_void, usize),
    Read(Vec<u8>),
}

impl Vmlinux {
    const PATH: &str = "/sys/kernel/btf/vmlinux";

    pub(super) fn open() -> std::io::Result<Vmlinux> {
        use rustix::mm::{MapFlags, ProtFlags};
        let f = std::fs::File::open(Self::PATH)?;
        let len = usize::try_from(f.metadata()?.len()).map_err(std::io::Error::other)?;
        // SAFETY: a new private read-only mapping of `len` bytes of a file we opened; nothing
        // else refers to that memory, and `Drop` unmaps it once.
        match unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::PRIVATE,
                &f,
                0,
            )
        } {
            Ok(p) if len > 0 => Ok(Vmlinux::Mapped(p, len)),
            _ => Ok(Vmlinux::Read(std::fs::read(Self::PATH)?)),
        }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            // SAFETY: the mapping of `len` readable bytes lives as long as `self`.
            Vmlinux::Mapped(p, len) => unsafe { std::slice::from_raw_parts(p.cast(), *len) },
            Vmlinux::Read(v) => v,
        }
    }
}

impl Drop for Vmlinux {
    fn drop(&mut self) {
        if let Vmlinux::Mapped(p, len) = *self {
            // SAFETY: `p` and `len` are the mapping made in `open`, unmapped only here.
            let _ = unsafe { rustix::mm::munmap(p, len) };
        }
    }
}

//! The `bpf(2)` commands an iterator needs: load a program, link it, open the iterator.

use rustix::fd::{FromRawFd, OwnedFd};
use std::io;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_ITER_CREATE: libc::c_long = 33;
/// `BPF_PROG_TYPE_TRACING`.
const PROG_TYPE_TRACING: u32 = 26;
/// `BPF_TRACE_ITER`.
const TRACE_ITER: u32 = 28;

/// The fields of `union bpf_attr` that `BPF_PROG_LOAD` reads, up to `attach_btf_id`.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    _pad: u32,
}

/// `BPF_LINK_CREATE` for an iterator: no target, no iterator parameters.
#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    iter_info: u64,
    iter_info_len: u32,
    _pad: u32,
}

/// `BPF_ITER_CREATE`.
#[repr(C)]
#[derive(Default)]
struct IterCreate {
    link_fd: u32,
    flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` value laid out as the leading fields
    // of `union bpf_attr` for `cmd`, and its size is passed with it; the kernel reads (and for
    // a log, writes through the pointers set in it, which outlive the call) nothing else.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(ret).map_err(|_| io::Error::other("bpf returned a bad fd"))?;
    // SAFETY: these commands return a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Loads an iterator program of `insns` for the iterator whose BTF function id is `attach_id`.
/// On a verifier refusal, the error carries the end of the verifier's log.
pub fn load_iter(name: &str, insns: &[u64], attach_id: u32) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = ProgLoad {
        prog_type: PROG_TYPE_TRACING,
        insn_cnt: u32::try_from(insns.len()).map_err(io::Error::other)?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: TRACE_ITER,
        attach_btf_id: attach_id,
        ..ProgLoad::default()
    };
    for (d, s) in attr.prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(fd),
        Err(e)
            if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EINVAL) =>
        {
            // Again with the verifier's log, to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[end.saturating_sub(600)..end]);
            Err(io::Error::new(e.kind(), format!("{e}: {}", text.trim())))
        }
        Err(e) => Err(e),
    }
}

/// A readable iterator of loaded program `prog`: each read runs the program over the next
/// objects and returns what it wrote.
pub fn open_iter(prog: &OwnedFd) -> io::Result<OwnedFd> {
    use rustix::fd::AsRawFd;
    let mut link = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        attach_type: TRACE_ITER,
        ..LinkCreate::default()
    };
    let link = bpf(BPF_LINK_CREATE, &mut link)?;
    let mut iter = IterCreate {
        link_fd: link.as_raw_fd() as u32,
        flags: 0,
    };
    bpf(BPF_ITER_CREATE, &mut iter)
}

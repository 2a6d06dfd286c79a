//! The `bpf(2)` commands an iterator needs: load a program, link it, open the iterator; and a
//! hash map's: create it, set and remove keys.

use rustix::fd::{FromRawFd, OwnedFd};
use std::io;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
/// `BPF_MAP_TYPE_HASH`.
const MAP_TYPE_HASH: u32 = 1;
/// `BPF_MAP_TYPE_PERCPU_ARRAY`.
const MAP_TYPE_PERCPU_ARRAY: u32 = 6;
/// `BPF_F_NO_PREALLOC`: entries are allocated as they are added.
const F_NO_PREALLOC: u32 = 1;
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

/// `BPF_MAP_CREATE`, up to the map's name.
#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `BPF_MAP_*_BATCH`.
#[repr(C)]
#[derive(Default)]
struct Batch {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `BPF_ITER_CREATE`.
#[repr(C)]
#[derive(Default)]
struct IterCreate {
    link_fd: u32,
    flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    let ret = bpf_raw(cmd, attr)?;
    let fd = i32::try_from(ret).map_err(|_| io::Error::other("bpf returned a bad fd"))?;
    // SAFETY: these commands return a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bpf_raw<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` value laid out as the leading fields
    // of `union bpf_attr` for `cmd`, and its size is passed with it; the kernel reads (and for
    // a log, writes) through the pointers set in it (instructions, log, keys and values, as
    // long as the counts beside them say), which outlive the call, and nothing else.
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
    Ok(ret)
}

/// A hash map named `name` of up to `max_entries` keys of `key_size` bytes to values of
/// `value_size`, each allocated as it is added.
pub fn hash_map(
    name: &str,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> io::Result<OwnedFd> {
    let attr = MapCreate {
        map_type: MAP_TYPE_HASH,
        key_size,
        value_size,
        max_entries,
        map_flags: F_NO_PREALLOC,
        ..MapCreate::default()
    };
    create_map(name, attr)
}

/// A per-CPU array map named `name` of one value of `value_size` bytes (each CPU's copy).
pub fn percpu_array(name: &str, value_size: u32) -> io::Result<OwnedFd> {
    let attr = MapCreate {
        map_type: MAP_TYPE_PERCPU_ARRAY,
        key_size: 4,
        value_size,
        max_entries: 1,
        ..MapCreate::default()
    };
    create_map(name, attr)
}

fn create_map(name: &str, mut attr: MapCreate) -> io::Result<OwnedFd> {
    for (d, s) in attr.map_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    bpf(BPF_MAP_CREATE, &mut attr)
}

/// Sets `keys` (u32 each) of hash map `map`, whose values are 16 bytes, to `values`, in one
/// call. Returns how many were set, from the first (all but on an error such as `ENOMEM`).
pub fn update_u32_keys(map: &OwnedFd, keys: &[u32], values: &[[u8; 16]]) -> usize {
    use rustix::fd::AsRawFd;
    assert_eq!(keys.len(), values.len(), "a value per key");
    if keys.is_empty() {
        return 0;
    }
    let mut attr = Batch {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: u32::try_from(keys.len()).unwrap_or(u32::MAX),
        map_fd: map.as_raw_fd() as u32,
        ..Batch::default()
    };
    match bpf_raw(BPF_MAP_UPDATE_BATCH, &mut attr) {
        Ok(_) => keys.len(),
        Err(_) => (attr.count as usize).min(keys.len()),
    }
}

/// Removes `keys` (u32 each) from hash map `map`: in one call, unless some are not there (the
/// kernel stops at the first, `ENOENT`), which are passed over.
pub fn delete_u32_keys(map: &OwnedFd, mut keys: &[u32]) {
    use rustix::fd::AsRawFd;
    while !keys.is_empty() {
        let mut attr = Batch {
            keys: keys.as_ptr() as u64,
            count: u32::try_from(keys.len()).unwrap_or(u32::MAX),
            map_fd: map.as_raw_fd() as u32,
            ..Batch::default()
        };
        match bpf_raw(BPF_MAP_DELETE_BATCH, &mut attr) {
            Ok(_) => return,
            // The first `count` went; the next one failed.
            Err(_) => keys = keys.get(attr.count as usize + 1..).unwrap_or(&[]),
        }
    }
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

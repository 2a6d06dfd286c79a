//! The kernel's text formats, printed here from random values.

use super::*;

#[derive(Clone, Debug)]
pub(crate) struct MapsCase {
    pub(crate) entry: maps::MapsEntry,
    pub(crate) perms: [u8; 4],
}

/// A maps path as the kernel may print it: absolute, any bytes but `\` (which the kernel
/// prints raw, so a literal `\012` in a name is indistinguishable from an escaped newline),
/// newlines included; or empty (anonymous memory).
pub(crate) fn maps_path() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        4 => prop::collection::vec(
            prop_oneof![
                4 => any::<u8>().prop_filter("no backslash", |b| *b != b'\\'),
                1 => Just(b'\n'),
                1 => Just(b' '),
            ],
            0..60,
        )
        .prop_map(|mut v| {
            v.insert(0, b'/');
            v
        }),
        1 => "(/memfd:|/SYSV|/dev/shm/)[ -~&&[^\\\\]]{0,20}( \\(deleted\\))?"
            .prop_map(String::into_bytes),
    ]
}

pub(crate) fn maps_case() -> impl Strategy<Value = MapsCase> {
    (
        any::<u64>(),
        any::<u64>(),
        (
            prop::sample::select(vec![b'r', b'-']),
            prop::sample::select(vec![b'w', b'-']),
            prop::sample::select(vec![b'x', b'-']),
            prop::sample::select(vec![b's', b'p']),
        ),
        any::<u64>(),
        0u32..0x1000,
        0u32..0x10_0000,
        any::<u64>(),
        maps_path(),
    )
        .prop_map(
            |(a, b, (r, w, x, s), offset, major, minor, inode, path)| MapsCase {
                entry: maps::MapsEntry {
                    start: a.min(b),
                    end: a.max(b),
                    shared: s == b's',
                    offset,
                    dev_major: major,
                    dev_minor: minor,
                    inode,
                    path,
                },
                perms: [r, w, x, s],
            },
        )
}

/// `show_vma_header_prefix` and `show_map_vma` (fs/proc/task_mmu.c): the path is padded to
/// column 73 and a newline in it is printed as `\012`.
pub(crate) fn kernel_maps_line(c: &MapsCase) -> Vec<u8> {
    let e = &c.entry;
    let mut s = format!(
        "{:08x}-{:08x} {} {:08x} {:02x}:{:02x} {} ",
        e.start,
        e.end,
        String::from_utf8_lossy(&c.perms),
        e.offset,
        e.dev_major,
        e.dev_minor,
        e.inode
    )
    .into_bytes();
    if !e.path.is_empty() {
        while s.len() < 72 {
            s.push(b' ');
        }
        s.push(b' ');
        for &b in &e.path {
            if b == b'\n' {
                s.extend_from_slice(b"\\012");
            } else {
                s.push(b);
            }
        }
    }
    s
}

pub(crate) fn join_lines(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

#[derive(Clone, Debug)]
pub(crate) struct SmapsCase {
    pub(crate) map: MapsCase,
    /// kB values: Rss, Pss, Private_Clean, Private_Dirty, Swap.
    pub(crate) kb: [u64; 5],
}

pub(crate) fn smaps_case() -> impl Strategy<Value = SmapsCase> {
    // Sums of two Private_* lines stay below u64::MAX bytes.
    (maps_case(), prop::array::uniform5(0u64..(1 << 52)))
        .prop_map(|(map, kb)| SmapsCase { map, kb })
}

/// One mapping of smaps: the maps line, then every field the kernel prints (6.x order).
pub(crate) fn kernel_smaps(c: &SmapsCase) -> Vec<u8> {
    let [rss, pss, pc, pd, swap] = c.kb;
    let mut s = kernel_maps_line(&c.map);
    s.push(b'\n');
    let size = (c.map.entry.end - c.map.entry.start) / 1024;
    for (k, v) in [
        ("Size", size),
        ("KernelPageSize", 4),
        ("MMUPageSize", 4),
        ("Rss", rss),
        ("Pss", pss),
        ("Pss_Dirty", 0),
        ("Shared_Clean", 0),
        ("Shared_Dirty", 0),
        ("Private_Clean", pc),
        ("Private_Dirty", pd),
        ("Referenced", rss),
        ("Anonymous", 0),
        ("KSM", 0),
        ("LazyFree", 0),
        ("AnonHugePages", 0),
        ("ShmemPmdMapped", 0),
        ("FilePmdMapped", 0),
        ("Shared_Hugetlb", 0),
        ("Private_Hugetlb", 0),
        ("Swap", swap),
        ("SwapPss", 0),
        ("Locked", 0),
    ] {
        s.extend_from_slice(format!("{:<16}{v:>8} kB\n", format!("{k}:")).as_bytes());
    }
    s.extend_from_slice(b"THPeligible:           0\nVmFlags: rd wr sh mr mw me ms sd \n");
    s
}

pub(crate) fn status_text(name: &[u8], ppid: i32, uid: u32, kb: Option<[u64; 5]>) -> Vec<u8> {
    let mut out = Vec::new();
    for line in STATUS.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let key = line.split(|&b| b == b':').next().unwrap_or_default();
        let kb_line = |v: u64| format!("{}:\t{v:>8} kB", String::from_utf8_lossy(key)).into_bytes();
        let new: Option<Vec<u8>> = match (key, kb) {
            (b"Name", _) => Some([b"Name:\t".as_slice(), name].concat()),
            (b"PPid", _) => Some(format!("PPid:\t{ppid}").into_bytes()),
            (b"Uid", _) => Some(format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}").into_bytes()),
            // A kernel thread has no Vm* and Rss* lines at all.
            (k, None) if k.starts_with(b"Vm") || k.starts_with(b"Rss") => continue,
            (b"VmRSS", Some(v)) => Some(kb_line(v[0])),
            (b"RssAnon", Some(v)) => Some(kb_line(v[1])),
            (b"RssFile", Some(v)) => Some(kb_line(v[2])),
            (b"RssShmem", Some(v)) => Some(kb_line(v[3])),
            (b"VmSwap", Some(v)) => Some(kb_line(v[4])),
            _ => None,
        };
        out.extend_from_slice(new.as_deref().unwrap_or(line));
        out.push(b'\n');
    }
    out
}

/// `/proc/PID/stat` of the capture with another command and values: the command may hold any
/// byte but NUL (parentheses, spaces and newlines included); the kernel prints it raw.
pub(crate) fn stat_text(comm: &[u8], ppid: i32, start: u64) -> Vec<u8> {
    let text = std::str::from_utf8(STAT).unwrap().trim_end();
    let close = text.rfind(')').unwrap();
    let mut fields: Vec<String> = text[close + 2..].split(' ').map(str::to_string).collect();
    fields[1] = ppid.to_string();
    fields[19] = start.to_string();
    let mut out = b"4242 (".to_vec();
    out.extend_from_slice(comm);
    out.extend_from_slice(b") ");
    out.extend_from_slice(fields.join(" ").as_bytes());
    out.push(b'\n');
    out
}

pub(crate) const SYSV_HEADER: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n";

pub(crate) fn sysv_segment() -> impl Strategy<Value = SysvSegment> {
    (
        (any::<i32>(), 0..i32::MAX, 0u32..0o20000, any::<u64>()),
        (
            0..i32::MAX,
            0..i32::MAX,
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
        ),
        (0..i64::MAX, any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |((key, shmid, perms, size), (cpid, lpid, nattch, uid, cuid), (ctime, rss, swap))| {
                SysvSegment {
                    key: shmwho::model::SysvKey(key),
                    shmid,
                    perms,
                    size_bytes: size,
                    cpid,
                    lpid,
                    nattch,
                    uid,
                    cuid,
                    ctime,
                    rss_bytes: Some(rss),
                    swap_bytes: Some(swap),
                }
            },
        )
}

/// `sysvipc_shm_proc_show` (ipc/shm.c).
pub(crate) fn kernel_sysv_row(s: &SysvSegment) -> String {
    format!(
        "{:>10} {:>10}  {:>4o} {:>21} {:>5} {:>5}  {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10} {:>21} {:>21}\n",
        s.key.0,
        s.shmid,
        s.perms,
        s.size_bytes,
        s.cpid,
        s.lpid,
        s.nattch,
        s.uid,
        s.uid,
        s.cuid,
        s.cuid,
        s.ctime,
        0,
        s.ctime,
        s.rss_bytes.unwrap(),
        s.swap_bytes.unwrap()
    )
}

/// mountinfo escapes space, tab, newline and backslash as three octal digits (`mangle()` in
/// fs/proc_namespace.c).
/// The same on bytes: the kernel leaves bytes that are not UTF-8 as they are.
pub(crate) fn mangle_bytes(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in path {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            b => out.push(b),
        }
    }
    out
}

/// A tmpfs mount point: `/` then any bytes but NUL, UTF-8 or not.
pub(crate) fn mount_point_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<u8>().prop_filter("no NUL", |b| *b != 0),
            1 => prop::sample::select(vec![b' ', b'\t', b'\n', b'\\', b'/']),
        ],
        1..40,
    )
    .prop_map(|mut v| {
        v.insert(0, b'/');
        v
    })
}

pub(crate) fn mangle(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A mount point as text: `/` then anything but NUL (cgroup mounts are read as text).
pub(crate) fn mount_point() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>().prop_filter("no NUL", |c| *c != '\0'),
            1 => prop::sample::select(vec![' ', '\t', '\n', '\\', '/']),
        ],
        1..40,
    )
    .prop_map(|cs| format!("/{}", cs.into_iter().collect::<String>()))
}

//! Property tests for every `/proc` parser: arbitrary bytes and mutated real captures
//! (`tests/fixtures/`) never panic and never hang, and text in the kernel's own format parses
//! back to exactly what was printed, however hostile the names in it.
//!
//! Case counts are small so the whole file runs in seconds in CI. Fuzz longer with, e.g.,
//! `PROPTEST_CASES=20000 cargo test --release --test proptest_parsers` (every property then
//! runs that many cases; `SHMWHO_BIN=path` picks the binary the fake-procfs property runs).
//!
//! A hang is caught by a watchdog: each parse runs on its own thread and must return within
//! [`WATCHDOG`], which is orders of magnitude above the microseconds it takes. It is a hang
//! detector, not a timing assertion.

use proptest::prelude::*;
use proptest::sample::Index;
use shmwho::collect::{cgroup, maps, meminfo, mountinfo, pagemap, smaps, stat, status, sysv};
use shmwho::model::{CgroupVersion, SysvSegment};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(30);

const MAPS: &[u8] = include_bytes!("fixtures/maps_lab.txt");
const SMAPS: &[u8] = include_bytes!("fixtures/smaps_lab.txt");
const STATUS: &[u8] = include_bytes!("fixtures/status_lab.txt");
const STAT: &[u8] = include_bytes!("fixtures/stat_lab.txt");
const SYSV: &[u8] = include_bytes!("fixtures/sysvipc_shm.txt");
const MOUNTINFO: &[u8] = include_bytes!("fixtures/mountinfo.txt");
const MEMINFO: &[u8] = include_bytes!("fixtures/meminfo.txt");
const CGROUP_HYBRID: &[u8] = include_bytes!("fixtures/cgroup_hybrid.txt");
const CGROUP_V2: &[u8] = include_bytes!("fixtures/cgroup_v2.txt");
const CGROUP_MOUNTINFO: &[u8] = include_bytes!("fixtures/mountinfo_cgroup_hybrid.txt");
const MEMORY_STAT_V1: &[u8] = include_bytes!("fixtures/memory_stat_v1.txt");
const MEMORY_STAT_V2: &[u8] = include_bytes!("fixtures/memory_stat_v2.txt");

/// `PROPTEST_CASES` overrides every property's case count.
fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Runs `f(input)` on a thread and fails if it does not return within [`WATCHDOG`]. A panic in
/// `f` is passed on, so proptest shrinks the input.
fn bounded<T: Send + 'static>(what: &str, input: &[u8], f: fn(&[u8]) -> T) -> T {
    let owned = input.to_vec();
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let r = f(&owned);
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "{what} did not return within {WATCHDOG:?} on {} input bytes: {:?}",
            input.len(),
            String::from_utf8_lossy(&input[..input.len().min(300)])
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs: arbitrary bytes, and real captures with mutations.

/// Bytes that steer parsers into their edge cases more often than random bytes do.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b" ",
    b"\t",
    b":",
    b"-",
    b"(",
    b")",
    b"\\",
    b"\\012",
    b"\\040",
    b"\\777",
    b" (deleted)",
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999999",
    b"ffffffffffffffff",
    b"fffffffffffffffff",
    b"-1",
    b"0",
    b" kB",
    b"kB",
    b"\xff\xfe",
    b"\xc3\xa9",
    b"\x1b[31m",
    b"\0",
    b"/memfd:",
    b"/SYSV",
    b"/dev/zero (deleted)",
    b"/dev/shm/",
    b"00:01",
    b" - ",
    b"tmpfs",
    b"proc",
    b"/proc",
    b"hidepid=2",
    b"Name:",
    b"PPid:",
    b"Uid:",
    b"VmRSS:",
    b"Rss:",
    b"Pss:",
    b"Private_Dirty:",
    b"Swap:",
    b"btime ",
    b"key",
    b"shmid",
    b"rss",
];

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Token(Index, Index),
    Delete(Index, usize),
    Truncate(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::Token(i, t)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn apply(text: &[u8], ms: &[Mutation]) -> Vec<u8> {
    let mut t = text.to_vec();
    for m in ms {
        let at = |i: &Index, t: &Vec<u8>| i.index(t.len() + 1);
        match m {
            Mutation::Flip(i, b) => {
                if !t.is_empty() {
                    let k = i.index(t.len());
                    t[k] = *b;
                }
            }
            Mutation::Insert(i, v) => {
                let k = at(i, &t);
                t.splice(k..k, v.iter().copied());
            }
            Mutation::Token(i, tok) => {
                let k = at(i, &t);
                let tok = TOKENS[tok.index(TOKENS.len())];
                t.splice(k..k, tok.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let k = at(i, &t);
                let end = (k + n).min(t.len());
                t.drain(k..end);
            }
            Mutation::Truncate(i) => {
                let k = at(i, &t);
                t.truncate(k);
            }
            Mutation::DuplicateLine(i) => {
                let mut lines: Vec<Vec<u8>> =
                    t.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let k = i.index(lines.len());
                let dup = lines[k].clone();
                lines.insert(k, dup);
                t = lines.join(&b'\n');
            }
            Mutation::SwapLines(a, b) => {
                let mut lines: Vec<Vec<u8>> =
                    t.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let (x, y) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(x, y);
                t = lines.join(&b'\n');
            }
        }
    }
    t
}

/// A real capture with 1 to 12 mutations.
fn mutated(fixture: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(mutation(), 1..12).prop_map(move |ms| apply(fixture, &ms))
}

/// Random bytes biased towards the tokens parsers split on.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<u8>().prop_map(|b| vec![b]),
            1 => any::<Index>().prop_map(|i| TOKENS[i.index(TOKENS.len())].to_vec()),
            1 => "[0-9a-f]{1,20}".prop_map(String::into_bytes),
        ],
        0..200,
    )
    .prop_map(|parts| parts.concat())
}

/// A line (no `\n`) of garbage.
fn garbage_line() -> impl Strategy<Value = Vec<u8>> {
    garbage().prop_map(|mut v| {
        v.retain(|&b| b != b'\n');
        v
    })
}

/// Every input family a parser gets: garbage, its own capture mutated, and every other capture
/// mutated (a parser fed the wrong file must not panic either).
fn any_input(own: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => garbage(),
        4 => mutated(own),
        1 => mutated(MAPS),
        1 => mutated(STATUS),
        1 => mutated(SYSV),
        1 => mutated(MOUNTINFO),
        1 => mutated(STAT),
    ]
}

// Each parser through the watchdog, forcing the lazy iterator and every field.
fn run_maps(t: &[u8]) -> usize {
    let n = maps::parse(t).fold(0usize, |n, e| n + (e.dev() as usize ^ e.path.len()) % 2);
    for line in t.split(|&b| b == b'\n') {
        if let Some(e) = maps::parse_line(line) {
            assert!(e.start <= e.end, "{e:?}");
            let _ = maps::strip_deleted(&e.path);
        }
    }
    n
}
fn run_smaps(t: &[u8]) -> usize {
    smaps::parse(t).len()
}
fn run_status(t: &[u8]) -> bool {
    status::parse(t).is_some_and(|s| s.vm_rss.is_none())
}
fn run_stat(t: &[u8]) -> bool {
    stat::parse(t).is_some()
}
fn run_sysv(t: &[u8]) -> usize {
    sysv::parse(t).iter().filter(|s| s.removed()).count()
}
fn run_mounts(t: &[u8]) -> (usize, bool) {
    (mountinfo::tmpfs(t).len(), mountinfo::proc_hidepid(t))
}
fn run_btime(t: &[u8]) -> Option<i64> {
    shmwho::collect::parse_btime(t)
}
fn run_meminfo(t: &[u8]) -> bool {
    meminfo::parse(t).is_some()
}
fn run_cgroup(t: &[u8]) -> usize {
    let h = cgroup::parse_mounts(t);
    let _ = h.memory_version();
    [CgroupVersion::V1, CgroupVersion::V2]
        .into_iter()
        .filter_map(|v| cgroup::parse_process(t, v))
        .filter_map(|c| h.stat_path(&c))
        .count()
        + cgroup::parse_stat_shmem(t).is_some() as usize
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn maps_never_panics(t in any_input(MAPS)) {
        bounded("maps::parse", &t, run_maps);
    }

    #[test]
    fn smaps_never_panics(t in any_input(SMAPS)) {
        bounded("smaps::parse", &t, run_smaps);
    }

    #[test]
    fn status_never_panics(t in any_input(STATUS)) {
        bounded("status::parse", &t, run_status);
    }

    #[test]
    fn stat_never_panics(t in any_input(STAT)) {
        bounded("stat::parse", &t, run_stat);
    }

    #[test]
    fn sysv_never_panics(t in any_input(SYSV)) {
        bounded("sysv::parse", &t, run_sysv);
    }

    #[test]
    fn mountinfo_never_panics(t in any_input(MOUNTINFO)) {
        bounded("mountinfo::tmpfs/proc_hidepid", &t, run_mounts);
    }

    #[test]
    fn proc_stat_btime_never_panics(t in any_input(b"cpu  1 2 3\nbtime 1795748280\nprocesses 9\n")) {
        bounded("parse_btime", &t, run_btime);
    }

    #[test]
    fn cgroup_files_never_panic(t in prop_oneof![
        any_input(CGROUP_HYBRID),
        mutated(CGROUP_V2),
        mutated(CGROUP_MOUNTINFO),
        mutated(MEMORY_STAT_V1),
        mutated(MEMORY_STAT_V2),
    ]) {
        bounded("cgroup parsers", &t, run_cgroup);
    }

    #[test]
    fn meminfo_never_panics(t in any_input(MEMINFO)) {
        bounded("meminfo::parse", &t, run_meminfo);
    }
}

// ---------------------------------------------------------------------------------------------
// Well-formed text: the kernel's formats, printed here from random values, parse back exactly.

#[derive(Clone, Debug)]
struct MapsCase {
    entry: maps::MapsEntry,
    perms: [u8; 4],
}

/// A maps path as the kernel may print it: absolute, any bytes but `\` (which the kernel
/// prints raw, so a literal `\012` in a name is indistinguishable from an escaped newline),
/// newlines included; or empty (anonymous memory).
fn maps_path() -> impl Strategy<Value = Vec<u8>> {
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

fn maps_case() -> impl Strategy<Value = MapsCase> {
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
fn kernel_maps_line(c: &MapsCase) -> Vec<u8> {
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

fn join_lines(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

#[derive(Clone, Debug)]
struct SmapsCase {
    map: MapsCase,
    /// kB values: Rss, Pss, Private_Clean, Private_Dirty, Swap.
    kb: [u64; 5],
}

fn smaps_case() -> impl Strategy<Value = SmapsCase> {
    // Sums of two Private_* lines stay below u64::MAX bytes.
    (maps_case(), prop::array::uniform5(0u64..(1 << 52)))
        .prop_map(|(map, kb)| SmapsCase { map, kb })
}

/// One mapping of smaps: the maps line, then every field the kernel prints (6.x order).
fn kernel_smaps(c: &SmapsCase) -> Vec<u8> {
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

fn status_text(name: &[u8], ppid: i32, uid: u32, kb: Option<[u64; 5]>) -> Vec<u8> {
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
fn stat_text(comm: &[u8], ppid: i32, start: u64) -> Vec<u8> {
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

const SYSV_HEADER: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n";

fn sysv_segment() -> impl Strategy<Value = SysvSegment> {
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
fn kernel_sysv_row(s: &SysvSegment) -> String {
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
fn mangle_bytes(path: &[u8]) -> Vec<u8> {
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
fn mount_point_bytes() -> impl Strategy<Value = Vec<u8>> {
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

fn mangle(path: &str) -> String {
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
fn mount_point() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>().prop_filter("no NUL", |c| *c != '\0'),
            1 => prop::sample::select(vec![' ', '\t', '\n', '\\', '/']),
        ],
        1..40,
    )
    .prop_map(|cs| format!("/{}", cs.into_iter().collect::<String>()))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn maps_kernel_format_round_trips(cases in prop::collection::vec(maps_case(), 1..20)) {
        let lines: Vec<Vec<u8>> = cases.iter().map(kernel_maps_line).collect();
        for (c, line) in cases.iter().zip(&lines) {
            prop_assert_eq!(maps::parse_line(line), Some(c.entry.clone()));
        }
        let all: Vec<maps::MapsEntry> = maps::parse(&join_lines(&lines)).collect();
        let want: Vec<maps::MapsEntry> = cases.into_iter().map(|c| c.entry).collect();
        prop_assert_eq!(all, want);
    }

    /// Lines the parser rejects, spliced anywhere into a real capture, change nothing else:
    /// one bad line never hides or alters its neighbours.
    #[test]
    fn maps_bad_lines_do_not_disturb_good_ones(
        junk in prop::collection::vec((any::<Index>(), garbage_line()), 1..10)
    ) {
        let mut lines: Vec<Vec<u8>> = MAPS.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        for (at, j) in junk {
            if maps::parse_line(&j).is_none() {
                lines.insert(at.index(lines.len() + 1), j);
            }
        }
        let want: Vec<_> = maps::parse(MAPS).collect();
        let got: Vec<_> = maps::parse(&lines.join(&b'\n')).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn smaps_kernel_format_round_trips(cases in prop::collection::vec(smaps_case(), 1..12)) {
        let text: Vec<u8> = cases.iter().flat_map(kernel_smaps).collect();
        let got = smaps::parse(&text);
        prop_assert_eq!(got.len(), cases.len());
        for (v, c) in got.iter().zip(&cases) {
            let [rss, pss, pc, pd, swap] = c.kb;
            prop_assert_eq!(&v.entry, &c.map.entry);
            prop_assert_eq!(v.rss, rss * 1024);
            prop_assert_eq!(v.pss, pss * 1024);
            prop_assert_eq!(v.private, (pc + pd) * 1024);
            prop_assert_eq!(v.swap, swap * 1024);
        }
    }

    /// Lines that are neither a mapping header nor a `Key:` field, spliced into a real capture,
    /// change nothing.
    #[test]
    fn smaps_foreign_lines_do_not_disturb(
        junk in prop::collection::vec((any::<Index>(), garbage_line()), 1..10)
    ) {
        let mut lines: Vec<Vec<u8>> = SMAPS.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        for (at, j) in junk {
            let first = j.split(|&b| b == b' ').next().unwrap_or_default();
            if maps::parse_line(&j).is_none() && !first.ends_with(b":") {
                lines.insert(at.index(lines.len() + 1), j);
            }
        }
        prop_assert_eq!(smaps::parse(&lines.join(&b'\n')), smaps::parse(SMAPS));
    }

    #[test]
    fn status_kernel_format_round_trips(
        name in prop::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..64),
        ppid in 0..i32::MAX,
        uid in any::<u32>(),
        kb in prop::option::weighted(0.9, prop::array::uniform5(0u64..(u64::MAX >> 10))),
    ) {
        let st = status::parse(&status_text(&name, ppid, uid, kb)).expect("well-formed status");
        prop_assert_eq!(&st.name, &String::from_utf8_lossy(&name).into_owned());
        prop_assert_eq!(st.ppid, ppid);
        prop_assert_eq!(st.uid, uid);
        match kb {
            Some(v) => {
                prop_assert_eq!(st.vm_rss, Some(v[0] * 1024));
                prop_assert_eq!(
                    [st.rss_anon, st.rss_file, st.rss_shmem, st.vm_swap],
                    [v[1] * 1024, v[2] * 1024, v[3] * 1024, v[4] * 1024]
                );
            }
            None => prop_assert_eq!(st.vm_rss, None),
        }
    }

    /// Lines without a colon or with keys shmwho does not read change nothing.
    #[test]
    fn status_unknown_lines_do_not_disturb(
        junk in prop::collection::vec((any::<Index>(), garbage_line()), 1..10)
    ) {
        const READ: &[&[u8]] = &[b"Name", b"PPid", b"Uid", b"VmRSS", b"RssAnon", b"RssFile", b"RssShmem", b"VmSwap"];
        let mut lines: Vec<Vec<u8>> = STATUS.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        for (at, j) in junk {
            let key = j.split(|&b| b == b':').next().unwrap_or_default();
            if !j.contains(&b':') || !READ.contains(&key) {
                lines.insert(at.index(lines.len() + 1), j);
            }
        }
        prop_assert_eq!(status::parse(&lines.join(&b'\n')), status::parse(STATUS));
    }

    #[test]
    fn stat_any_command_round_trips(
        comm in prop::collection::vec(any::<u8>().prop_filter("no NUL", |b| *b != 0), 0..32),
        ppid in 0..i32::MAX,
        start in any::<u64>(),
    ) {
        let st = stat::parse(&stat_text(&comm, ppid, start)).expect("well-formed stat");
        prop_assert_eq!(&st.comm, &String::from_utf8_lossy(&comm).into_owned());
        prop_assert_eq!(st.ppid, ppid);
        prop_assert_eq!(st.start_ticks, start);
    }

    #[test]
    fn sysv_kernel_format_round_trips(segs in prop::collection::vec(sysv_segment(), 0..20)) {
        let text: String = std::iter::once(SYSV_HEADER.to_string())
            .chain(segs.iter().map(kernel_sysv_row))
            .collect();
        prop_assert_eq!(sysv::parse(text.as_bytes()), segs);
    }

    /// Rows of the wrong width (truncated, extra columns) are skipped; the others survive.
    #[test]
    fn sysv_bad_rows_do_not_disturb(
        segs in prop::collection::vec(sysv_segment(), 1..10),
        junk in prop::collection::vec((any::<Index>(), garbage_line()), 1..10),
    ) {
        let mut rows: Vec<String> = segs.iter().map(kernel_sysv_row).collect();
        for (at, j) in junk {
            let j = String::from_utf8_lossy(&j).into_owned();
            if j.split_whitespace().count() != 16 {
                rows.insert(at.index(rows.len() + 1), format!("{j}\n"));
            }
        }
        let text = format!("{SYSV_HEADER}{}", rows.concat());
        prop_assert_eq!(sysv::parse(text.as_bytes()), segs);
    }

    #[test]
    fn mountinfo_escaped_mount_points_round_trip(
        points in prop::collection::vec((mount_point_bytes(), 0u32..4096, 0u32..(1 << 20)), 1..8),
        at in any::<Index>(),
    ) {
        use std::os::unix::ffi::OsStrExt;
        let base: Vec<Vec<u8>> = MOUNTINFO.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        let ours: Vec<Vec<u8>> = points
            .iter()
            .enumerate()
            .map(|(i, (mp, maj, min))| {
                [
                    format!("{} 25 {maj}:{min} / ", 900 + i).as_bytes(),
                    &mangle_bytes(mp),
                    b" rw,nosuid,nodev - tmpfs tmpfs rw,size=1024k",
                ]
                .concat()
            })
            .collect();
        let k = at.index(base.len() + 1);
        let mut lines = base[..k].to_vec();
        lines.extend(ours);
        lines.extend_from_slice(&base[k..]);
        let got = mountinfo::tmpfs(&lines.join(&b'\n'));
        let mut want = mountinfo::tmpfs(&base[..k].join(&b'\n'));
        want.extend(points.iter().map(|(mp, maj, min)| mountinfo::MountEntry {
            dev: rustix::fs::makedev(*maj, *min),
            root: b"/".to_vec(),
            mount_point: PathBuf::from(std::ffi::OsStr::from_bytes(mp)),
            fs_type: "tmpfs".to_string(),
            super_options: "rw,size=1024k".to_string(),
        }));
        want.extend(mountinfo::tmpfs(&base[k..].join(&b'\n')));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn hidepid_options(
        value in prop::sample::select(vec!["0", "1", "2", "4", "off", "noaccess", "invisible", "ptraceable"]),
        extra in "(,[a-z]{1,8}=[0-9]{1,4})?",
        mp in prop::sample::select(vec!["/proc", "/proc2", "/mnt/proc"]),
    ) {
        let line = format!("22 1 0:21 / {mp} rw,nosuid,nodev,noexec,relatime - proc proc rw{extra},hidepid={value}\n");
        let text = [MOUNTINFO, line.as_bytes()].concat();
        let hidden = mp == "/proc" && !matches!(value, "0" | "off");
        prop_assert_eq!(mountinfo::proc_hidepid(&text), hidden);
    }

    #[test]
    fn btime_found_among_other_lines(
        btime in any::<i64>().prop_map(i64::unsigned_abs).prop_map(|v| (v >> 1) as i64),
        before in prop::collection::vec("[a-z_]{1,10}( [0-9]{1,9}){1,8}", 0..10),
    ) {
        let text = format!("{}\nbtime {btime}\nprocesses 1\n", before.join("\n"));
        prop_assert_eq!(shmwho::collect::parse_btime(text.as_bytes()), Some(btime));
    }

    /// fd link targets and mount points: a target is under a mount point exactly when the
    /// mount point is a leading run of whole components.
    #[test]
    fn fd_targets_under_mount_points(
        mp in prop::collection::vec("[a-z \n\\\\]{1,6}", 1..4).prop_map(|c| format!("/{}", c.join("/"))),
        rest in "[a-z ]{0,6}(/[a-z ]{0,6}){0,3}",
        glue in prop::sample::select(vec!["/", "", "x", " ", "\n"]),
    ) {
        let target = format!("{mp}{glue}{rest}");
        let expect = glue == "/" || (glue.is_empty() && rest.is_empty()) || (glue.is_empty() && rest.starts_with('/'));
        prop_assert_eq!(shmwho::collect::under(target.as_bytes(), mp.as_bytes()), expect);
        prop_assert!(shmwho::collect::under(target.as_bytes(), b"/"));
    }
}

/// The kernel does not escape bytes that are not UTF-8 in mountinfo: the mount point keeps
/// them (fd targets under it are matched byte for byte).
#[test]
fn mountinfo_non_utf8_mount_point_keeps_its_bytes() {
    let line = b"99 25 0:77 / /mnt/bad\xff\\040x rw - tmpfs tmpfs rw\n";
    let m = mountinfo::tmpfs(line);
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].mount_point.as_os_str().as_encoded_bytes(),
        b"/mnt/bad\xff x"
    );
    assert_eq!(m[0].dev, rustix::fs::makedev(0, 77));
}

/// The captures themselves still parse as they did when they were taken.
#[test]
fn fixtures_parse_as_captured() {
    let entries: Vec<_> = maps::parse(MAPS).collect();
    assert_eq!(
        entries.len(),
        MAPS.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    );
    let zero: Vec<_> = entries
        .iter()
        .filter(|e| e.path == b"/dev/zero (deleted)")
        .collect();
    assert_eq!(zero.len(), 1);
    assert!(zero[0].shared && zero[0].dev_major == 0 && zero[0].dev_minor == 1);

    let vmas = smaps::parse(SMAPS);
    assert_eq!(
        vmas.len(),
        entries.len(),
        "smaps and maps were captured together"
    );
    let z = vmas
        .iter()
        .find(|v| v.entry.path == b"/dev/zero (deleted)")
        .unwrap();
    assert_eq!((z.rss, z.pss, z.private), (4096, 4096, 4096));

    let st = status::parse(STATUS).unwrap();
    assert_eq!(
        (st.name.as_str(), st.ppid, st.uid, st.rss_shmem),
        ("python3", 1791, 0, 4096)
    );
    let st = stat::parse(STAT).unwrap();
    assert_eq!(
        (st.comm.as_str(), st.ppid, st.start_ticks),
        ("python3", 1791, 139945)
    );

    let segs = sysv::parse(SYSV);
    assert_eq!(segs.len(), 1);
    assert_eq!(
        (segs[0].shmid, segs[0].size_bytes, segs[0].nattch),
        (0, 1 << 20, 1)
    );

    let tmpfs = mountinfo::tmpfs(MOUNTINFO);
    assert!(tmpfs
        .iter()
        .any(|m| m.mount_point == std::path::Path::new("/dev/shm")));
    assert!(!mountinfo::proc_hidepid(MOUNTINFO));

    let mi = meminfo::parse(MEMINFO).unwrap();
    assert_eq!(mi.mem_total_bytes, 24684084 * 1024);
    assert_eq!(mi.shmem_bytes, 8872 * 1024);

    let h = cgroup::parse_mounts(CGROUP_MOUNTINFO);
    assert_eq!(h.memory_version(), Some(CgroupVersion::V1));
    assert_eq!(
        h.process_cgroup(CGROUP_HYBRID).as_deref(),
        Some("/system.slice/php8.2-fpm.service")
    );
    assert_eq!(
        cgroup::parse_process(CGROUP_V2, CgroupVersion::V2).as_deref(),
        Some("/system.slice/postgresql@15-main.service")
    );
    assert_eq!(cgroup::parse_stat_shmem(MEMORY_STAT_V1), Some(9084928));
    assert_eq!(cgroup::parse_stat_shmem(MEMORY_STAT_V2), Some(25165824));
}

/// Inputs procfs-core's meminfo parser panicked on (shmwho now parses meminfo itself).
#[test]
fn meminfo_regressions() {
    assert_eq!(meminfo::parse(b"MemTotal\xc3\xa9 5 kB\n"), None);
    assert_eq!(meminfo::parse(b"MemTotal: 18446744073709551615 kB\n"), None);
}

/// A cgroup path as `/proc/PID/cgroup` prints it: `/` or `/`-separated names, printed raw.
/// A name holds anything but `/`, NUL and newline; not a trailing `\r` either, which
/// `cgroup::parse_process` drops (it splits with `str::lines`), and no empty component
/// (`//`), which the kernel cannot print and which `stat_path` would resolve outside the
/// mount (`Path::join` of an absolute path).
fn cgroup_path() -> impl Strategy<Value = String> {
    let name = prop::collection::vec(
        prop_oneof![
            4 => any::<char>().prop_filter("a name", |c| !matches!(c, '\n' | '\0' | '/')),
            1 => prop::sample::select(vec![':', ' ', '.']),
        ],
        1..12,
    )
    .prop_map(|cs| cs.into_iter().collect::<String>())
    .prop_filter("no trailing CR", |n| !n.ends_with('\r'));
    prop::collection::vec(name, 0..4).prop_map(|names| format!("/{}", names.join("/")))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn meminfo_kernel_format_round_trips(
        kb in prop::array::uniform5(0u64..(u64::MAX >> 10)),
        junk in prop::collection::vec((any::<Index>(), garbage_line()), 0..6),
    ) {
        const KEYS: [&str; 5] = ["MemTotal", "Shmem", "SwapTotal", "SwapFree", "Hugepagesize"];
        let mut lines: Vec<Vec<u8>> = std::str::from_utf8(MEMINFO)
            .unwrap()
            .lines()
            .map(|l| {
                let key = l.split(':').next().unwrap();
                match KEYS.iter().position(|k| *k == key) {
                    Some(i) => format!("{:<16}{:>8} kB", format!("{key}:"), kb[i]),
                    None => l.to_string(),
                }
                .into_bytes()
            })
            .collect();
        for (at, j) in junk {
            let key = j.split(|&b| b == b':').next().unwrap_or_default();
            if !j.contains(&b':') || !KEYS.iter().any(|k| k.as_bytes() == key) {
                lines.insert(at.index(lines.len() + 1), j);
            }
        }
        let m = meminfo::parse(&lines.join(&b'\n')).expect("well-formed meminfo");
        prop_assert_eq!(
            [m.mem_total_bytes, m.shmem_bytes, m.swap_total_bytes, m.swap_free_bytes, m.hugepage_bytes],
            kb.map(|v| v * 1024)
        );
    }

    #[test]
    fn cgroup_membership_round_trips(
        path in cgroup_path(),
        v1 in any::<bool>(),
        at in any::<Index>(),
    ) {
        let (base, line, version) = if v1 {
            (CGROUP_HYBRID, format!("4:memory:{path}"), CgroupVersion::V1)
        } else {
            (CGROUP_V2, format!("0::{path}"), CgroupVersion::V2)
        };
        let mut lines: Vec<String> = std::str::from_utf8(base)
            .unwrap()
            .lines()
            .filter(|l| !(l.starts_with("4:memory:") || l.starts_with("0::")))
            .map(str::to_string)
            .collect();
        lines.insert(at.index(lines.len() + 1), line);
        prop_assert_eq!(
            cgroup::parse_process(lines.join("\n").as_bytes(), version),
            Some(path)
        );
    }

    /// A cgroup path, however hostile, never leads `memory.stat` outside the mounted hierarchy.
    #[test]
    fn cgroup_stat_path_stays_under_the_mount(
        mp in mount_point(),
        root in prop_oneof![Just("/".to_string()), cgroup_path()],
        path in prop_oneof![cgroup_path(), "(/\\.\\.|/[a-z]{1,3}){1,6}"],
    ) {
        let text = format!(
            "35 31 0:32 {} {} rw,relatime - cgroup cgroup rw,memory\n",
            mangle(&root),
            mangle(&mp)
        );
        let h = cgroup::parse_mounts(text.as_bytes());
        let m = h.v1_memory.as_ref().expect("memory hierarchy parsed");
        prop_assert_eq!(&m.mount_point, &PathBuf::from(&mp));
        prop_assert_eq!(&m.root, &root);
        if let Some(p) = h.stat_path(&path) {
            prop_assert!(p.starts_with(&m.mount_point), "{p:?}");
            let rel = p.strip_prefix(&m.mount_point).unwrap();
            prop_assert!(
                rel.components().all(|c| matches!(c, std::path::Component::Normal(_))),
                "{p:?} leaves the hierarchy"
            );
        }
    }

    #[test]
    fn memory_stat_shmem_round_trips(
        shmem in any::<u64>(),
        v2 in any::<bool>(),
    ) {
        let base = if v2 { MEMORY_STAT_V2 } else { MEMORY_STAT_V1 };
        let text: String = std::str::from_utf8(base)
            .unwrap()
            .lines()
            .map(|l| if l.starts_with("shmem ") { format!("shmem {shmem}\n") } else { format!("{l}\n") })
            .collect();
        prop_assert_eq!(cgroup::parse_stat_shmem(text.as_bytes()), Some(shmem));
    }

    /// pagemap entries are binary: any 64-bit values decode, and the pages found present are
    /// exactly the entries with the present and file bits.
    #[test]
    fn pagemap_entries_decode(
        entries in prop::collection::vec(
            prop_oneof![any::<u64>(), Just(0u64), Just(3u64 << 61), Just(1u64 << 63), Just(1u64 << 61)],
            0..600,
        ),
        first in 0u64..(1 << 52),
    ) {
        let mut ranges = pagemap::PageRanges::new();
        pagemap::decode_present(&entries, first, &mut ranges);
        let want = entries.iter().filter(|&&e| e & (1 << 63) != 0 && e & (1 << 61) != 0).count() as u64;
        prop_assert_eq!(ranges.pages(), want);
        let mut phys = pagemap::PhysPages::default();
        pagemap::decode_pfns(&entries, &mut phys);
        prop_assert!(phys.anon.len() + phys.file.len() <= entries.len());
    }
}

// ---------------------------------------------------------------------------------------------
// The whole binary over a fake procfs built from fuzzed files (the hidden `--proc-root`).

#[derive(Clone, Debug)]
struct FakeProcess {
    stat: Vec<u8>,
    status: Vec<u8>,
    maps: Vec<u8>,
    mountinfo: Vec<u8>,
    /// Extra maps lines naming the real memfd behind `map_files` (so they are measured and
    /// rendered), with hostile paths.
    shmem_lines: Vec<MapsCase>,
    own_ns: bool,
}

#[derive(Clone, Debug)]
struct FakeProc {
    meminfo: Vec<u8>,
    proc_stat: Vec<u8>,
    mountinfo: Vec<u8>,
    sysv: Vec<u8>,
    processes: Vec<FakeProcess>,
}

fn fixture_or_mutated(f: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![1 => Just(f.to_vec()), 2 => mutated(f)]
}

fn fake_process() -> impl Strategy<Value = FakeProcess> {
    (
        prop_oneof![
            fixture_or_mutated(STAT),
            (
                prop::collection::vec(1u8..=255, 0..20),
                1..i32::MAX,
                any::<u64>()
            )
                .prop_map(|(c, p, s)| stat_text(&c, p, s)),
        ],
        prop_oneof![
            fixture_or_mutated(STATUS),
            (
                prop::collection::vec(any::<u8>(), 0..20),
                0..i32::MAX,
                any::<u32>()
            )
                .prop_map(|(n, p, u)| status_text(
                    &n,
                    p,
                    u,
                    Some([1 << 20, 4, 4, 4, 0])
                )),
        ],
        fixture_or_mutated(MAPS),
        fixture_or_mutated(MOUNTINFO),
        prop::collection::vec(maps_case(), 0..6),
        any::<bool>(),
    )
        .prop_map(
            |(stat, status, maps, mountinfo, shmem_lines, own_ns)| FakeProcess {
                stat,
                status,
                maps,
                mountinfo,
                shmem_lines,
                own_ns,
            },
        )
}

fn fake_proc() -> impl Strategy<Value = FakeProc> {
    (
        prop_oneof![4 => Just(MEMINFO.to_vec()), 1 => mutated(MEMINFO)],
        fixture_or_mutated(b"cpu  1 2 3\nbtime 1795748280\n"),
        prop_oneof![4 => Just(MOUNTINFO.to_vec()), 1 => mutated(MOUNTINFO)],
        prop_oneof![
            fixture_or_mutated(SYSV),
            prop::collection::vec(sysv_segment(), 0..4).prop_map(|segs| {
                std::iter::once(SYSV_HEADER.to_string())
                    .chain(segs.iter().map(kernel_sysv_row))
                    .collect::<String>()
                    .into_bytes()
            }),
        ],
        prop::collection::vec(fake_process(), 1..4),
    )
        .prop_map(
            |(meminfo, proc_stat, mountinfo, sysv, processes)| FakeProc {
                meminfo,
                proc_stat,
                mountinfo,
                sysv,
                processes,
            },
        )
}

/// A real memfd, 3 pages long with 1 written, that fake `map_files` links point at.
fn real_memfd() -> &'static (std::os::fd::OwnedFd, u64, u64) {
    static FD: std::sync::OnceLock<(std::os::fd::OwnedFd, u64, u64)> = std::sync::OnceLock::new();
    FD.get_or_init(|| {
        let fd = rustix::fs::memfd_create("shmwho-proptest", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        rustix::fs::ftruncate(&fd, 3 * 4096).unwrap();
        rustix::io::pwrite(&fd, &[1u8; 4096], 0).unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        (fd, st.st_dev, st.st_ino)
    })
}

/// Cuts every run of hex digits to 13 (decimal values below 10^13, addresses and hex values
/// below 2^52). No kernel reports a size near 2^64 bytes, and sums of such values would
/// overflow: that is out of scope here, the parsers' own properties cover huge numbers.
fn tame(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut run = 0;
    for &b in text {
        if b.is_ascii_hexdigit() {
            run += 1;
            if run > 13 {
                continue;
            }
        } else {
            run = 0;
        }
        out.push(b);
    }
    out
}

fn build_fake_proc(f: &FakeProc) -> tempfile::TempDir {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::symlink;
    let dir = tempfile::Builder::new()
        .prefix("shmwho-fakeproc-")
        .tempdir()
        .unwrap();
    let root = dir.path();
    let write = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, tame(data)).unwrap();
    };
    write("meminfo", &f.meminfo);
    write("stat", &f.proc_stat);
    write("self/mountinfo", &f.mountinfo);
    write("sysvipc/shm", &f.sysv);
    std::fs::create_dir_all(root.join("self/ns")).unwrap();
    symlink("ipc:[4026531839]", root.join("self/ns/ipc")).unwrap();
    symlink("mnt:[4026531841]", root.join("self/ns/mnt")).unwrap();
    let (fd, dev, ino) = real_memfd();
    let real = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
    for (i, p) in f.processes.iter().enumerate() {
        let pid = 100 + i;
        write(&format!("{pid}/stat"), &p.stat);
        write(&format!("{pid}/status"), &p.status);
        write(&format!("{pid}/mountinfo"), &p.mountinfo);
        let mut maps = p.maps.clone();
        std::fs::create_dir_all(root.join(format!("{pid}/map_files"))).unwrap();
        std::fs::create_dir_all(root.join(format!("{pid}/fd"))).unwrap();
        for (k, c) in p.shmem_lines.iter().enumerate() {
            let mut c = c.clone();
            c.entry.dev_major = rustix::fs::major(*dev);
            c.entry.dev_minor = rustix::fs::minor(*dev);
            c.entry.inode = *ino;
            c.entry.start = (k as u64 + 1) << 20;
            c.entry.end = c.entry.start + 3 * 4096;
            c.entry.offset = 0;
            c.perms[3] = b's';
            maps.push(b'\n');
            maps.extend(kernel_maps_line(&c));
            let link = format!("{pid}/map_files/{:x}-{:x}", c.entry.start, c.entry.end);
            let _ = symlink(&real, root.join(link));
        }
        // smaps: the same mappings with fields, for --pss and --charge touched.
        let mut smaps = Vec::new();
        for line in maps.split(|&b| b == b'\n') {
            smaps.extend_from_slice(line);
            smaps.extend_from_slice(b"\nRss:                   4 kB\nPss:                   2 kB\nPrivate_Dirty:         0 kB\n");
        }
        write(&format!("{pid}/maps"), &maps);
        write(&format!("{pid}/smaps"), &smaps);
        std::fs::create_dir_all(root.join(format!("{pid}/ns"))).unwrap();
        let ns = if p.own_ns { 4026531839u64 } else { 4026539999 };
        symlink(format!("ipc:[{ns}]"), root.join(format!("{pid}/ns/ipc"))).unwrap();
        symlink(
            format!("mnt:[{}]", ns + 2),
            root.join(format!("{pid}/ns/mnt")),
        )
        .unwrap();
        symlink(&real, root.join(format!("{pid}/fd/3"))).unwrap();
        symlink(
            "/memfd:gone\n\x1b[31m (deleted)",
            root.join(format!("{pid}/fd/4")),
        )
        .unwrap();
    }
    dir
}

/// No control character but newline reaches the terminal.
fn assert_no_raw_controls(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|&c| c.is_control() && c != '\n') {
        panic!("{what} printed a raw control character {c:?}:\n{text}");
    }
}

/// Runs the real binary; it must exit 0 with well-formed output, or 1 with one line on stderr.
fn run_over(root: &std::path::Path, args: &[&str]) {
    // SHMWHO_BIN: fuzz a release build (or a copy that a concurrent build cannot replace).
    let bin = std::env::var_os("SHMWHO_BIN").unwrap_or(env!("CARGO_BIN_EXE_shmwho").into());
    let out = std::process::Command::new(bin)
        .args(args)
        .arg("--proc-root")
        .arg(root)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run shmwho");
    let stdout = String::from_utf8(out.stdout).expect("output is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {
            if args.contains(&"--json") {
                let v: serde_json::Value = serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("shmwho {args:?}: invalid JSON ({e}):\n{stdout}"));
                assert_eq!(v["schema"], 1);
            } else {
                assert_no_raw_controls(&format!("shmwho {args:?}"), &stdout);
            }
        }
        Some(1) => assert!(
            stderr.starts_with("shmwho: ") && stderr.trim_end().lines().count() == 1,
            "shmwho {args:?}: an error must be one line:\n{stderr}"
        ),
        _ => panic!("shmwho {args:?} crashed ({:?}):\n{stderr}", out.status),
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn binary_survives_a_fuzzed_procfs(f in fake_proc()) {
        let dir = build_fake_proc(&f);
        for args in [
            &["--json"][..],
            &["--bytes"],
            &["--json", "--charge", "touched"],
            &["procs", "--pss"],
            &["procs", "--json", "--charge", "split"],
        ] {
            run_over(dir.path(), args);
        }
    }
}

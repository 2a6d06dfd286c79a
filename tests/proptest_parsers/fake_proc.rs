//! The whole binary over a fake procfs built from fuzzed files (the hidden `--proc-root`), and
//! the library over a whole fake host (procfs, `/dev/shm`, passwd) built from the same files.

use super::*;

#[derive(Clone, Debug)]
pub(crate) struct FakeProcess {
    pub(crate) stat: Vec<u8>,
    pub(crate) status: Vec<u8>,
    pub(crate) maps: Vec<u8>,
    pub(crate) mountinfo: Vec<u8>,
    /// Extra maps lines naming the real memfd behind `map_files` (so they are measured and
    /// rendered), with hostile paths.
    pub(crate) shmem_lines: Vec<MapsCase>,
    pub(crate) own_ns: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct FakeProc {
    pub(crate) meminfo: Vec<u8>,
    pub(crate) proc_stat: Vec<u8>,
    pub(crate) mountinfo: Vec<u8>,
    pub(crate) sysv: Vec<u8>,
    pub(crate) passwd: Vec<u8>,
    pub(crate) processes: Vec<FakeProcess>,
}

pub(crate) fn fixture_or_mutated(f: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![1 => Just(f.to_vec()), 2 => mutated(f)]
}

pub(crate) fn fake_process() -> impl Strategy<Value = FakeProcess> {
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

pub(crate) fn fake_proc() -> impl Strategy<Value = FakeProc> {
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
        fixture_or_mutated(PASSWD),
    )
        .prop_map(
            |(meminfo, proc_stat, mountinfo, sysv, processes, passwd)| FakeProc {
                meminfo,
                proc_stat,
                mountinfo,
                sysv,
                processes,
                passwd,
            },
        )
}

/// A real memfd, 3 pages long with 1 written, that fake `map_files` links point at.
pub(crate) fn real_memfd() -> &'static (std::os::fd::OwnedFd, u64, u64) {
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
pub(crate) fn tame(text: &[u8]) -> Vec<u8> {
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

/// A fake host: `proc/` (the fuzzed procfs), `etc/passwd`, and `dev/shm/` with one file of 2
/// pages written, which an extra mountinfo line names as the tmpfs at `/dev/shm` (with the
/// device the temporary directory really is on, so the walk and `stat` find it).
pub(crate) fn build_fake_proc(f: &FakeProc) -> tempfile::TempDir {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::symlink;
    let dir = tempfile::Builder::new()
        .prefix("shmwho-fakeproc-")
        .tempdir()
        .unwrap();
    let host = dir.path();
    std::fs::create_dir_all(host.join("etc")).unwrap();
    std::fs::write(host.join("etc/passwd"), &f.passwd).unwrap();
    std::fs::create_dir_all(host.join("dev/shm/sub")).unwrap();
    std::fs::write(host.join("dev/shm/sub/fake-shm"), [7u8; 2 * 4096]).unwrap();
    let shm_dev = rustix::fs::stat(host.join("dev/shm")).unwrap().st_dev;
    let mut mountinfo = f.mountinfo.clone();
    mountinfo.extend_from_slice(
        format!(
            "\n999 25 {}:{} / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw\n",
            rustix::fs::major(shm_dev),
            rustix::fs::minor(shm_dev)
        )
        .as_bytes(),
    );
    let root = &host.join("proc");
    let write = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, tame(data)).unwrap();
    };
    write("meminfo", &f.meminfo);
    write("stat", &f.proc_stat);
    write("self/mountinfo", &mountinfo);
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
pub(crate) fn assert_no_raw_controls(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|&c| c.is_control() && c != '\n') {
        panic!("{what} printed a raw control character {c:?}:\n{text}");
    }
}

/// Runs the real binary; it must exit 0 with well-formed output, or 1 with one line on stderr.
pub(crate) fn run_over(root: &std::path::Path, args: &[&str]) {
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
            run_over(&dir.path().join("proc"), args);
        }
        // The library over the whole host: a scan, or one clean error.
        let paths = shmwho::collect::HostPaths {
            proc_root: dir.path().join("proc"),
            dev_shm: "/dev/shm".into(),
            passwd: dir.path().join("etc/passwd"),
            mount_root: dir.path().to_path_buf(),
            sys_root: dir.path().join("sys"),
        };
        for smaps in [false, true] {
            let opts = shmwho::collect::Options { paths: paths.clone(), smaps, cgroups: true, bpf: true, repeated: false, counters: true, titles: true, pss_totals_only: false };
            if let Ok(snap) = shmwho::collect::collect(&opts) {
                for policy in shmwho::account::Policy::ALL {
                    shmwho::account::account(&snap, policy);
                }
            }
        }
    }
}

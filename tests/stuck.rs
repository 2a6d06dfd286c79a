//! A process whose mmap_lock is stuck (issue 8 section 4), made for real: a FUSE file whose
//! read() does not answer (tests/fixtures/stuck_fuse.py), faulted in through /proc/self/mem by
//! one thread while another queues mmap() for the write lock (tests/fixtures/stuck_holder.py).
//! Every view must finish within --timeout + 2 s, name the pid, and measure the object the
//! stuck process shares through its other holder.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PY: &str = "/usr/bin/python3";
const TIMEOUT: Duration = Duration::from_secs(1);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shmwho")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Everything the test starts, undone even on panic: the FUSE read released first (so the
/// stuck threads can die), then the holder's process group killed, the mount detached and the
/// daemon killed.
struct Stuck {
    dir: tempfile::TempDir,
    daemon: Child,
    holder: Option<Child>,
    shm: PathBuf,
}

impl Stuck {
    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
    fn release(&self) -> PathBuf {
        self.dir.path().join("release")
    }
}

impl Drop for Stuck {
    fn drop(&mut self) {
        let _ = std::fs::write(self.release(), b"");
        if let Some(h) = &mut self.holder {
            // SAFETY: kill(2) on the holder's own process group (it was started as a leader).
            unsafe { libc::kill(-(h.id() as i32), libc::SIGKILL) };
            let _ = h.wait();
        }
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(self.mnt())
            .status();
        let _ = Command::new("umount").arg("-l").arg(self.mnt()).status();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_file(&self.shm);
    }
}

fn fusepy_available() -> bool {
    Command::new(PY)
        .args(["-c", "import fusepy"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && Path::new("/dev/fuse").exists()
}

/// Runs shmwho with `args`, killing it past `limit`; its stdout, or a panic naming the view.
/// Output goes to files, not pipes: a reader thread shmwho abandoned in the kernel keeps the
/// process's descriptors open until the lock is released, so a pipe would not see EOF.
fn run_within(args: &[&str], limit: Duration) -> String {
    eprintln!("running shmwho {args:?}");
    let start = Instant::now();
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut child = Command::new(bin())
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .expect("spawn shmwho");
    let read = |mut f: &std::fs::File| {
        use std::io::Seek;
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "shmwho {args:?} failed: {}", read(&err));
            return read(&out);
        }
        if start.elapsed() > limit {
            // Not waited for: a thread asleep in the kernel can keep it from exiting.
            let _ = child.kill();
            panic!(
                "shmwho {args:?} did not finish within {limit:?}: {}",
                read(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn names_stuck(doc: &Value, pid: i64, file: &str) -> bool {
    doc["stuck_processes"].as_array().is_some_and(|a| {
        a.iter()
            .any(|s| s["pid"].as_i64() == Some(pid) && s["comm"] == "python3" && s["file"] == file)
    })
}

/// Waits up to 2 s for `child` to exit after SIGTERM.
fn terminates_within_2s(child: &mut Child) -> bool {
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    false
}

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT + Duration::from_secs(8)))
        .unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body)
        .expect("scrape answered in time");
    body
}

fn gauge(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("shmwho_stuck_processes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("shmwho_stuck_processes gauge")
}

#[test]
fn a_process_with_a_stuck_mmap_lock_hangs_no_view() {
    if !common::require_root("FUSE mounts and map_files") {
        return;
    }
    if !fusepy_available() {
        common::skip_missing("python3-fusepy or /dev/fuse missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mnt")).unwrap();
    let daemon = Command::new(PY)
        .arg(fixture("stuck_fuse.py"))
        .arg(dir.path().join("mnt"))
        .arg(dir.path().join("release"))
        .stdout(Stdio::null())
        .spawn()
        .expect("start the FUSE daemon");
    let shm = PathBuf::from(format!("/dev/shm/shmwho-stuck-{}", common::unique()));
    let mut st = Stuck {
        dir,
        daemon,
        holder: None,
        shm: shm.clone(),
    };
    std::fs::File::create(&shm)
        .unwrap()
        .set_len(16 * common::page())
        .unwrap();
    let file = st.mnt().join("f");
    let start = Instant::now();
    while !file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "FUSE never mounted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut holder = {
        use std::os::unix::process::CommandExt;
        Command::new(PY)
            .arg(fixture("stuck_holder.py"))
            .arg(&file)
            .arg(&shm)
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start the holder")
    };
    let out = holder.stdout.take().unwrap();
    let pid = holder.id() as i64;
    st.holder = Some(holder);
    let mut lines = BufReader::new(out).lines();
    let child: i64 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "stuck");
    std::thread::sleep(Duration::from_millis(500));
    // The setup is real: smaps_rollup of the holder does not answer.
    {
        let path = format!("/proc/{pid}/smaps_rollup");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(std::fs::read(path));
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(1)).is_err(),
            "the holder's mmap_lock is not stuck"
        );
    }

    let t = "1s";
    // Past the timeout, room for a whole debug-build scan on a loaded 2-core machine: a view
    // that waited on the locked process would never finish at all.
    let limit = TIMEOUT + Duration::from_secs(8);
    let page = common::page();

    // Objects: the anonymous shared mapping is measured through the child's map_files. With
    // the BPF iterators, the objects view reads titles first, beside them
    // (src/collect/titles.rs): the process is found stuck in cmdline then, and its map_files
    // are not tried.
    let bpf = shmwho::collect::bpf::probe(std::process::id() as i32).is_ok();
    let first = if bpf { "cmdline" } else { "map_files" };
    let doc: Value = serde_json::from_str(&run_within(&["--timeout", t, "--json"], limit)).unwrap();
    assert!(names_stuck(&doc, pid, first), "{}", doc["stuck_processes"]);
    let anon = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["kind"] == "anon_shared"
                && o["holders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["pid"].as_i64() == Some(child))
        })
        .expect("the holder's anonymous shared mapping");
    assert_eq!(anon["exact"], true, "{anon}");
    assert_eq!(anon["resident_bytes"].as_u64(), Some(3 * page), "{anon}");
    // The /dev/shm file both are reached by path.
    let shm_name = shm.to_str().unwrap();
    assert!(doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| { o["path"] == shm_name && o["resident_bytes"].as_u64() == Some(16 * page) }));

    let table = run_within(&["--timeout", t], limit);
    assert!(
        table.contains(&format!(
            "pid {pid} (python3): /proc/{pid}/{first} did not answer in 1 s: its memory map is locked"
        )),
        "{table}"
    );

    let doc: Value =
        serde_json::from_str(&run_within(&["procs", "--timeout", t, "--json"], limit)).unwrap();
    assert!(
        names_stuck(&doc, pid, "map_files"),
        "{}",
        doc["stuck_processes"]
    );

    // smaps takes the lock on every kernel: the process is left out.
    let doc: Value = serde_json::from_str(&run_within(
        &["procs", "--pss", "--timeout", t, "--json"],
        limit,
    ))
    .unwrap();
    assert!(
        names_stuck(&doc, pid, "smaps"),
        "{}",
        doc["stuck_processes"]
    );
    assert!(!doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["pid"].as_i64() == Some(pid)));

    let show = run_within(&["show", &format!("pid:{pid}"), "--timeout", t], limit);
    assert!(show.contains(&format!("{pid}")), "{show}");
    run_within(&["show", shm_name, "--timeout", t], limit);

    let metrics = run_within(&["export", "--timeout", t], limit);
    assert!(gauge(&metrics) >= 1, "{metrics}");

    eprintln!("exporter");
    // The exporter answers every scrape in time, and ends on SIGTERM.
    let mut server = Command::new(bin())
        .args(["export", "--listen", "127.0.0.1:0", "--timeout", t])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = BufReader::new(server.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let addr = first
        .rsplit("http://")
        .next()
        .and_then(|s| s.strip_suffix("/metrics"))
        .expect("serving line")
        .to_string();
    for _ in 0..3 {
        let started = Instant::now();
        let body = scrape(&addr);
        assert!(
            started.elapsed() < limit,
            "scrape took {:?}",
            started.elapsed()
        );
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(gauge(body.split("\r\n\r\n").nth(1).unwrap()) >= 1);
    }
    assert!(
        terminates_within_2s(&mut server),
        "exporter ignored SIGTERM"
    );

    eprintln!("--loop");
    // --textfile --loop writes, and ends on SIGTERM while a scan waits on the stuck process.
    let out_dir = tempfile::tempdir().unwrap();
    let mut looping = Command::new(bin())
        .arg("export")
        .arg("--textfile")
        .arg(out_dir.path())
        .args(["--loop", "--interval", "1s", "--timeout", t])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let written = loop {
        let f = std::fs::read_dir(out_dir.path())
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".prom"));
        if let Some(f) = f {
            break f.path();
        }
        assert!(started.elapsed() < limit, "--loop wrote nothing in time");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(gauge(&std::fs::read_to_string(written).unwrap()) >= 1);
    assert!(terminates_within_2s(&mut looping), "--loop ignored SIGTERM");
}

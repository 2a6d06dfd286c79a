//! A copy of the binary with README's file capabilities, run by an ordinary user (uid 65534),
//! tries each attack of issue 8 section 1 on objects and files root made here. Root only (it
//! sets file capabilities and switches users with setpriv).

mod common;

use common::*;
use serde_json::Value;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];
const SECRET: &str = "shmwho-secret-contents-7f3a";

/// A setcap'd copy in a directory anyone may search; None (skipped, reason printed) when
/// setcap is missing or the file system keeps no capabilities.
fn setcap_copy() -> Option<(tempfile::TempDir, String)> {
    let dir = tempfile::Builder::new()
        .prefix("shmwho-elevated-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("shmwho");
    std::fs::copy(bin(), &copy).unwrap();
    let out = Command::new("setcap")
        .arg("cap_checkpoint_restore,cap_sys_ptrace,cap_dac_read_search+ep")
        .arg(&copy)
        .output();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match out {
        Ok(o) if o.status.success() => Some((dir, copy.to_str().unwrap().to_string())),
        Ok(o) => {
            let why = format!("setcap failed: {}", String::from_utf8_lossy(&o.stderr));
            assert!(!ci, "{why}");
            common::skip(&why);
            None
        }
        Err(e) => {
            let why = format!("setcap not available ({e}; Debian package libcap2-bin)");
            assert!(!ci, "{why}");
            common::skip(&why);
            None
        }
    }
}

/// Runs the copy as uid 65534 (through `pre` when given, e.g. a hidepid mount).
fn as_nobody(copy: &str, args: &[&str]) -> Output {
    let _g = lock();
    Command::new("setpriv")
        .args(NOBODY)
        .arg(copy)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv")
}

fn json_of(args: &[&str], out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{args:?}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A refusal: exit 2, one line on stderr naming `what`, nothing on stdout.
fn refused(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("shmwho: ") && err.contains(what), "{err}");
    assert!(out.stdout.is_empty());
}

/// The kernel's own count (st_blocks): a host with shmem THP on holds a huge page where a
/// few small pages were written, and other test runs on this machine may switch it.
fn allocated(fd: std::os::fd::RawFd) -> u64 {
    // SAFETY: fstat into a zeroed struct we own, on an fd we hold.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
    st.st_blocks as u64 * 512
}

/// A root-only directory (0700) with a root-only file in it; removed on drop.
struct Private {
    dir: tempfile::TempDir,
}

impl Private {
    fn new_in(parent: &Path) -> Private {
        let dir = tempfile::Builder::new()
            .prefix("shmwho-private-")
            .tempdir_in(parent)
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Private { dir }
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
}

#[test]
fn refuses_a_caller_chosen_proc_root_and_daemons() {
    if !require_root("setcap and setpriv") {
        return;
    }
    let Some((_d, copy)) = setcap_copy() else {
        return;
    };
    let fake = tempfile::tempdir().unwrap();
    let root = fake.path().to_str().unwrap();
    for args in [
        vec!["--proc-root", root],
        vec!["procs", "--proc-root", root],
        vec!["show", "pid:1", "--proc-root", root],
        vec!["record", "-", "--proc-root", root],
        vec!["export", "--proc-root", root],
    ] {
        refused(&as_nobody(&copy, &args), "--proc-root");
    }
    refused(
        &as_nobody(&copy, &["export", "--listen", "127.0.0.1:0"]),
        "export --listen",
    );
    refused(&as_nobody(&copy, &["procs", "--exact"]), "procs --exact");
    // The plain binary, run by the same user, is not elevated: --proc-root works for tests.
    let out = {
        let _g = lock();
        Command::new("setpriv")
            .args(NOBODY)
            .arg(bin())
            .args(["--json", "--proc-root", "/proc"])
            .output()
            .unwrap()
    };
    assert!(out.status.success());
}

#[test]
fn shows_no_addresses_names_or_pictures_of_what_the_caller_cannot_open() {
    if !require_root("setcap and setpriv") {
        return;
    }
    let Some((_d, copy)) = setcap_copy() else {
        return;
    };
    // Root's objects, held by this (root) process: an anonymous shared region, a memfd with a
    // telling name, a 0600 file in /dev/shm and a file in a 0700 directory on /dev/shm.
    let region = SharedRegion::new(4);
    let memfd = Memfd::new(&format!("{SECRET}-memfd"), 4 * page());
    pwrite_pages(memfd.raw(), 0, 2);
    let shm = PosixShm::new("-elevated", 4 * page());
    pwrite_pages(shm.raw(), 0, 3);
    let private = Private::new_in(Path::new("/dev/shm"));
    let hidden_path = private.file(&format!("{SECRET}-file"), &vec![1u8; 5 * page() as usize]);
    let hidden_file = std::fs::File::open(&hidden_path).unwrap();
    let hidden_id = path_identity(&hidden_path);

    let out = as_nobody(&copy, &["--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc = json_of(&["--json"], &out);
    assert!(!text.contains(SECRET), "a name leaked:\n{text}");
    assert_eq!(doc["notes"]["addresses_hidden"], true);
    for o in objects(&doc) {
        for h in o["holders"].as_array().unwrap() {
            assert!(h.get("start").is_none() && h.get("end").is_none(), "{h}");
        }
    }
    // Sizes stay: measured exactly with the capabilities, whatever the name.
    let o = find_inode(&doc, &region.identity()).expect("the anonymous region is listed");
    assert_eq!(holders(o), vec![map(my_pid())]);
    let o = find_inode(&doc, &memfd.identity()).expect("the memfd is listed");
    assert_eq!(o["name"], "(hidden)");
    assert_eq!(u(&o["resident_bytes"]), allocated(memfd.raw()));
    let o = find_inode(&doc, &hidden_id).expect("the hidden file is listed");
    assert_eq!(u(&o["resident_bytes"]), allocated(hidden_file.as_raw_fd()));
    assert_eq!(o["path"], "/dev/shm/(hidden)", "{o}");
    // A name the caller may see stays: /dev/shm is searchable by all.
    let o = find_inode(&doc, &shm.identity()).expect("the shm file is listed");
    assert_eq!(o["path"], shm.path.to_str().unwrap());
    assert_eq!(u(&o["resident_bytes"]), allocated(shm.raw()));

    // Procs and the table: no address, no hidden name either.
    for args in [&["procs", "--json"][..], &[][..], &["procs"][..]] {
        let out = as_nobody(&copy, args);
        assert!(out.status.success(), "{args:?}");
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(!t.contains(SECRET), "{args:?}:\n{t}");
        assert!(
            !t.contains(&format!("{:x}", region.addr())),
            "{args:?}:\n{t}"
        );
    }

    // Pages pictures: not of root's 0600 file, not of root's memfd, not of root's process; and
    // a path in a 0700 directory is looked up with the caller's rights.
    let shm_ino = shm.identity().1.to_string();
    let memfd_ino = memfd.identity().1.to_string();
    let pid = format!("pid:{}", my_pid());
    let hidden_arg = hidden_path.to_str().unwrap().to_string();
    for target in [
        shm.path.to_str().unwrap(),
        &shm_ino,
        &memfd_ino,
        &pid,
        &hidden_arg,
    ] {
        let out = as_nobody(&copy, &["show", target]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "show {target}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.stdout.is_empty(), "show {target}");
        assert_eq!(err.lines().count(), 1, "show {target}: {err}");
        assert!(!err.contains(SECRET) || target == hidden_arg, "{err}");
    }
    // The same user's own object is shown, without addresses.
    drop(hidden_file);
}

#[test]
fn opens_caller_named_files_with_the_callers_rights() {
    if !require_root("setcap and setpriv") {
        return;
    }
    let Some((_d, copy)) = setcap_copy() else {
        return;
    };
    let private = Private::new_in(&std::env::temp_dir());
    let secret = private.file("root.json", format!("{{\"{SECRET}\": 1}}\n").as_bytes());
    let s = secret.to_str().unwrap();
    // diff reads only what the caller could: CAP_DAC_READ_SEARCH would read this file.
    let out = as_nobody(&copy, &["diff", s, s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("ermission denied"), "{err}");
    assert!(!err.contains(SECRET) && out.stdout.is_empty(), "{err}");
    // record and the textfile cannot write where the caller cannot.
    let target = private.dir.path().join("out.json");
    let out = as_nobody(&copy, &["record", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!target.exists());
    let out = as_nobody(
        &copy,
        &["export", "--textfile", private.dir.path().to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(!private.dir.path().join("shmwho.prom").exists());
    // Where the caller may write, the file is the caller's, written after the caps are gone.
    let open = tempfile::Builder::new()
        .prefix("shmwho-open-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let target = open.path().join("rec.json");
    let out = as_nobody(&copy, &["record", target.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(std::fs::metadata(&target).unwrap().uid(), 65534);
    let rec = std::fs::read_to_string(&target).unwrap();
    assert!(!rec.contains("\"start\""), "a record holds no address");
}

#[test]
fn processes_hidden_by_hidepid_are_counted_not_listed() {
    if !require_root("mounts /proc in a new mount namespace") {
        return;
    }
    let Some((_d, copy)) = setcap_copy() else {
        return;
    };
    let region = SharedRegion::new(2);
    let nobody = NOBODY.join(" ");
    let script =
        format!("mount -t proc -o hidepid=2 proc /proc && exec setpriv {nobody} \"$0\" \"$@\"");
    for args in [&["--json"][..], &["procs", "--json"][..]] {
        let out = {
            let _g = lock();
            Command::new("unshare")
                .args([
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    &script,
                    &copy,
                ])
                .args(args)
                .current_dir("/")
                .output()
                .unwrap()
        };
        let doc = json_of(args, &out);
        let text = String::from_utf8_lossy(&out.stdout);
        let hidden = if args[0] == "--json" {
            &doc["notes"]["hidden_processes"]
        } else {
            &doc["hidden_processes"]
        };
        assert!(u(hidden) > 0, "{args:?}: {text}");
        // Root's processes (this one, pid 1) appear nowhere: not as rows, not as holders.
        for pid in [my_pid(), 1] {
            assert!(
                !text.contains(&format!("\"pid\": {pid},"))
                    && !text.contains(&format!("\"pid\":{pid},")),
                "{args:?}: pid {pid} is listed"
            );
        }
        if args[0] == "--json" {
            assert!(find_inode(&doc, &region.identity()).is_none());
        }
    }
}

/// The lab run by uid 65534 (setpriv execs it): SIGTERM on drop (it removes its objects),
/// SIGKILL after 10 s; always reaped.
struct NobodyLab {
    proc: std::process::Child,
    truth: Value,
}

impl NobodyLab {
    fn start() -> NobodyLab {
        use std::io::BufRead as _;
        let mut proc = {
            let _g = lock();
            Command::new("setpriv")
                .args(NOBODY)
                .arg(bin())
                .args(["lab", "--json", "--size", "4M", "--all", "--for", "120"])
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut line = String::new();
        std::io::BufReader::new(proc.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut lab = NobodyLab {
            proc,
            truth: Value::Null,
        };
        lab.truth = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        lab
    }

    fn object(&self, kind: &str) -> &Value {
        self.truth["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("the lab made no {kind}"))
    }
}

impl Drop for NobodyLab {
    fn drop(&mut self) {
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(self.proc.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.proc.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// The caller's own objects and processes are shown in full, but for addresses.
#[test]
fn shows_the_callers_own_objects_without_addresses() {
    if !require_root("setcap and setpriv") {
        return;
    }
    let Some((_d, copy)) = setcap_copy() else {
        return;
    };
    let lab = NobodyLab::start();
    let master = lab.truth["master_pid"].as_i64().unwrap();
    for kind in ["memfd", "anon_shared", "sysv", "posix_shm"] {
        let o = lab.object(kind);
        let target = if kind == "sysv" {
            format!("sysv:{}", o["shmid"])
        } else {
            o["inode"].to_string()
        };
        let out = as_nobody(&copy, &["show", &target, "--json"]);
        let doc = json_of(&["show", &target], &out);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("\"start\""), "{kind}: {text}");
        assert_eq!(
            u(&doc["object"]["resident_bytes"]),
            u(&o["resident_bytes"]),
            "{kind}: measured exactly"
        );
        // The lab's /dev/shm file is closed once written: it has no holder to show.
        if kind != "posix_shm" {
            assert!(!doc["holders"].as_array().unwrap().is_empty(), "{kind}");
        }
        let out = as_nobody(&copy, &["show", &target]);
        assert!(out.status.success(), "{kind}");
        let t = String::from_utf8_lossy(&out.stdout);
        if kind == "anon_shared" {
            assert!(t.contains("map (address hidden)"), "{t}");
        }
    }
    let out = as_nobody(&copy, &["show", &format!("pid:{master}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The user's label rules are the caller's to choose, so they are read with the caller's
/// rights: a rules file only root may read labels nothing (CAP_DAC_READ_SEARCH would read it).
#[test]
fn reads_the_users_label_rules_with_the_callers_rights() {
    if !require_root("setcap and setpriv") {
        return;
    }
    let Some((_d, copy)) = setcap_copy() else {
        return;
    };
    let rules = format!("[[rule]]\nlabel = \"{SECRET}\"\n");
    // A root-only directory: as good as missing to the caller.
    let private = Private::new_in(&std::env::temp_dir());
    std::fs::create_dir(private.dir.path().join("shmwho")).unwrap();
    private.file("shmwho/labels.toml", rules.as_bytes());
    // A directory the caller may search, with a root-only file: skipped with a warning.
    let open = tempfile::Builder::new()
        .prefix("shmwho-open-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(open.path().join("shmwho")).unwrap();
    let file = open.path().join("shmwho/labels.toml");
    std::fs::write(&file, &rules).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    for (config, warned) in [(private.dir.path(), false), (open.path(), true)] {
        let out = {
            let _g = lock();
            Command::new("setpriv")
                .args(NOBODY)
                .arg(&copy)
                .arg("--json")
                .env("XDG_CONFIG_HOME", config)
                .current_dir("/")
                .stdin(Stdio::null())
                .output()
                .expect("setpriv")
        };
        let err = String::from_utf8_lossy(&out.stderr);
        let doc = json_of(&["--json"], &out);
        assert!(
            !doc.to_string().contains(SECRET),
            "{config:?}: rules read with the caps"
        );
        assert!(!err.contains(SECRET), "{err}");
        assert_eq!(
            err.contains("labels.toml") && err.contains("ermission denied"),
            warned,
            "{config:?}: {err}"
        );
    }
}

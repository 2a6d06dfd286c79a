//! shmwho under every privilege it may be given: an ordinary user, only the capabilities of
//! docs/facts.md #8 (ambient, and as file capabilities on a copy of the binary, as a packager would
//! set them), root in a user namespace (a container), and `/proc` mounted `hidepid=2`.
//!
//! In each case every view exits 0, what could not be measured is marked (`~`, `exact: false`,
//! notes), and the capability that would help is named once (`setcap` appears exactly once in
//! a table when something was estimated, never when nothing was). The objects are made by
//! `shmwho lab` running as the same user as the scan (uid 65534), so they are the scan's own.
//! The tests switch users and namespaces with setpriv, unshare and nsenter: root only.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child as Proc, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];
const CAPS: &str = "+checkpoint_restore,+sys_ptrace,+dac_read_search";
// The lab outlives any scan however loaded the host (its guard ends it when the test does).
const LAB: [&str; 7] = ["lab", "--json", "--size", "8M", "--all", "--for", "3600"];

/// The lab, run by `cmd` (which execs the binary, so the child is the lab's master): SIGTERM
/// on drop (it cleans up its objects), SIGKILL if it is still there after 10 s; always reaped.
struct Lab {
    proc: Proc,
    truth: Value,
}

impl Lab {
    fn spawn(mut cmd: Command) -> Lab {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut proc = {
            let _g = lock();
            cmd.current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr.reopen().unwrap())
                .spawn()
                .expect("spawn the lab")
        };
        let mut line = String::new();
        let n = BufReader::new(proc.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap_or(0);
        let mut lab = Lab {
            proc,
            truth: Value::Null,
        };
        if n == 0 {
            let _ = lab.proc.wait();
            panic!(
                "the lab printed nothing: {}",
                std::fs::read_to_string(stderr.path()).unwrap_or_default()
            );
        }
        lab.truth = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            lab.truth["master_pid"].as_i64(),
            Some(lab.proc.id() as i64),
            "the command must exec the lab"
        );
        lab
    }

    fn object(&self, kind: &str) -> &Value {
        self.truth["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("the lab made no {kind}: {}", self.truth))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Ok(None) = self.proc.try_wait() {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(self.proc.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.proc.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.proc.kill();
        }
        let _ = self.proc.wait();
    }
}

fn setpriv(extra: &[&str], program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(NOBODY).args(extra).arg(program);
    c
}

fn lab_as_nobody() -> Lab {
    let mut c = setpriv(&[], bin());
    c.args(LAB);
    Lab::spawn(c)
}

/// What a case should show for the lab's anonymous region, which only `map_files` measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Anon {
    Exact,
    LowerBound,
}

/// Runs the views through `scan` and checks them against the lab's truth.
fn check(case: &str, lab: &Lab, anon: Anon, scan: &dyn Fn(&[&str]) -> Command) -> String {
    let run = |args: &[&str]| -> Output {
        let _g = lock();
        let mut c = scan(args);
        c.current_dir("/").stdin(Stdio::null());
        c.output().expect("run the scan")
    };
    let ok = |args: &[&str], out: &Output| {
        assert!(
            out.status.success(),
            "{case}: shmwho {args:?} failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{case}: shmwho {args:?} wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    let out = run(&["--json"]);
    ok(&["--json"], &out);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let find = |kind: &str, key: &str| -> &Value {
        let t = lab.object(kind);
        objects(&doc)
            .iter()
            .find(|o| {
                // Identity: (dev, inode), or the shmid in our IPC namespace.
                o["kind"] == kind
                    && o[key] == t[key]
                    && if key == "inode" {
                        o["dev"] == t["dev"]
                    } else {
                        o["namespace"].is_null()
                    }
            })
            .unwrap_or_else(|| panic!("{case}: the lab's {kind} is not listed:\n{doc:#}"))
    };
    for (kind, key) in [
        ("memfd", "inode"),
        ("sysv", "shmid"),
        ("posix_shm", "inode"),
    ] {
        let (o, t) = (find(kind, key), lab.object(kind));
        assert_eq!(o["exact"], true, "{case}: {o}");
        assert_eq!(o["resident_bytes"], t["resident_bytes"], "{case}: {o}");
        assert_eq!(o["size_bytes"], t["size_bytes"], "{case}: {o}");
    }
    let (o, t) = (find("anon_shared", "inode"), lab.object("anon_shared"));
    let truth = u(&t["resident_bytes"]);
    match anon {
        Anon::Exact => {
            assert_eq!(o["exact"], true, "{case}: {o}");
            assert_eq!(u(&o["resident_bytes"]), truth, "{case}: {o}");
        }
        Anon::LowerBound => {
            assert_eq!(o["exact"], false, "{case}: {o}");
            assert_eq!(o["estimate_reason"], "map_files_denied", "{case}: {o}");
            let r = u(&o["resident_bytes"]);
            assert!(
                r > 0 && r <= truth,
                "{case}: lower bound {r} not in (0, {truth}]"
            );
            let listed: Vec<&str> = doc["notes"]["estimates"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["reason"].as_str())
                .collect();
            assert!(listed.contains(&"map_files_denied"), "{case}: {listed:?}");
        }
    }
    let holders: Vec<i64> = holders(o).iter().map(|h| h.0).collect();
    let mut want: Vec<i64> = lab.truth["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pid"].as_i64().unwrap())
        .collect();
    want.push(lab.truth["master_pid"].as_i64().unwrap());
    want.sort_unstable();
    assert_eq!(holders, want, "{case}: holders of the anonymous region");

    let hint = usize::from(anon == Anon::LowerBound);
    let mut table = String::new();
    for args in [&[][..], &["procs"], &["procs", "--pss"]] {
        let out = run(args);
        ok(args, &out);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            text.matches("sudo setcap").count(),
            hint,
            "{case}: shmwho {args:?} names the capability {hint} time(s):\n{text}"
        );
        if args.is_empty() {
            // Only the lab's rows: other users' objects on a host with swap in use are
            // legitimately `~` (swap_split_unavailable: mincore lies to a caller who neither
            // owns the file nor has CAP_FOWNER). The lab's objects belong to the scan's own
            // uid, so their split is exact (checked in the JSON above).
            for (kind, key) in [
                ("memfd", "inode"),
                ("sysv", "shmid"),
                ("posix_shm", "inode"),
                ("anon_shared", "inode"),
            ] {
                let id = match kind {
                    "sysv" => format!("sysv:{}", lab.object(kind)[key]),
                    _ => lab.object(kind)[key].to_string(),
                };
                let row = text
                    .lines()
                    .find(|l| {
                        let mut t = l.split_whitespace();
                        t.next() == Some(kind) && t.next() == Some(id.as_str())
                    })
                    .unwrap_or_else(|| panic!("{case}: no row for the lab's {kind} {id}:\n{text}"));
                assert_eq!(
                    row.contains('~'),
                    kind == "anon_shared" && anon == Anon::LowerBound,
                    "{case}: estimates are marked, and only they:\n{text}"
                );
            }
            if anon == Anon::LowerBound {
                assert!(
                    text.contains("~ "),
                    "{case}: the estimate is explained:\n{text}"
                );
            }
            table = text;
        }
    }
    let out = run(&["procs", "--json", "--pss"]);
    ok(&["procs", "--json", "--pss"], &out);
    let procs: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let master = lab.truth["master_pid"].as_i64().unwrap();
    assert!(
        process(&procs, master).is_some(),
        "{case}: the lab's master is missing from procs"
    );
    table
}

#[test]
fn as_an_ordinary_user() {
    if !require_root("switches to uid 65534 with setpriv") {
        return;
    }
    let lab = lab_as_nobody();
    let table = check("unprivileged", &lab, Anon::LowerBound, &|args| {
        let mut c = setpriv(&[], bin());
        c.args(args);
        c
    });
    assert!(
        table.contains("could not be read"),
        "other users' processes are counted:\n{table}"
    );
}

/// `setpriv --ambient-caps`: what a service manager grants (systemd `AmbientCapabilities=`).
#[test]
fn with_only_the_three_capabilities_ambient() {
    if !require_root("switches to uid 65534 with setpriv") {
        return;
    }
    let lab = lab_as_nobody();
    let caps = [
        format!("--inh-caps={CAPS}"),
        format!("--ambient-caps={CAPS}"),
    ];
    check("ambient capabilities", &lab, Anon::Exact, &|args| {
        let mut c = setpriv(&[&caps[0], &caps[1]], bin());
        c.args(args);
        c
    });
}

/// File capabilities on a copy of the binary, as README's packager line sets them:
/// `setcap cap_checkpoint_restore,cap_sys_ptrace,cap_dac_read_search+ep shmwho`.
#[test]
fn with_only_the_three_capabilities_setcap() {
    if !require_root("setcap and setpriv") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("shmwho-fcaps-")
        .tempdir()
        .unwrap();
    let copy = dir.path().join("shmwho");
    std::fs::copy(bin(), &copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let setcap = Command::new("setcap")
        .arg("cap_checkpoint_restore,cap_sys_ptrace,cap_dac_read_search+ep")
        .arg(&copy)
        .output();
    match setcap {
        Err(e) => {
            common::skip_missing(&format!(
                "setcap not available ({e}; Debian package libcap2-bin)"
            ));
            return;
        }
        Ok(o) if !o.status.success() => {
            common::skip(&format!(
                "setcap failed (a file system without xattrs?): {}",
                String::from_utf8_lossy(&o.stderr)
            ));
            return;
        }
        Ok(_) => {}
    }
    let lab = lab_as_nobody();
    let copy = copy.to_str().unwrap().to_string();
    check("file capabilities", &lab, Anon::Exact, &|args| {
        let mut c = setpriv(&[], &copy);
        c.args(args);
        c
    });
}

/// Root in a user namespace (a rootless container): full capabilities there, none over the
/// host. The lab runs in the namespace and the scan joins it; `map_files` needs
/// CAP_CHECKPOINT_RESTORE in the initial namespace, so the anonymous region is a lower bound.
#[test]
fn as_root_in_a_user_namespace() {
    if !require_root("setpriv, unshare and nsenter") {
        return;
    }
    let mut c = setpriv(&[], "unshare");
    c.args(["--user", "--map-root-user", bin()]).args(LAB);
    let lab = Lab::spawn(c);
    let target = lab.proc.id().to_string();
    let table = check(
        "root in a user namespace",
        &lab,
        Anon::LowerBound,
        &|args| {
            let mut c = Command::new("nsenter");
            c.args(["--user", "--target", &target, bin()]).args(args);
            c
        },
    );
    assert!(
        table.contains("could not be read"),
        "processes outside the namespace are counted:\n{table}"
    );
}

/// `/proc` mounted with `hidepid=2` (in a mount namespace of the scan's own): other users'
/// processes are invisible, and the output says so.
#[test]
fn with_proc_mounted_hidepid() {
    if !require_root("mounts /proc in a new mount namespace") {
        return;
    }
    let lab = lab_as_nobody();
    let nobody = NOBODY.join(" ");
    let script =
        format!("mount -t proc -o hidepid=2 proc /proc && exec setpriv {nobody} \"$0\" \"$@\"");
    let scan = |args: &[&str]| {
        let mut c = Command::new("unshare");
        c.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            bin(),
        ])
        .args(args);
        c
    };
    let table = check("hidepid=2", &lab, Anon::LowerBound, &scan);
    assert_eq!(
        table.matches("hidepid").count(),
        1,
        "hidepid is noted once:\n{table}"
    );
    // Hidden processes are not listed, so none is unreadable. A process of the same uid can be
    // unreadable for a moment (between setresuid and exec it is not dumpable: another test's
    // `setpriv`), so a few scans are allowed; counting the hidden ones would fail every scan.
    let mut notes = Value::Null;
    for _ in 0..5 {
        let out = {
            let _g = lock();
            scan(&["--json"]).output().unwrap()
        };
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["notes"]["hidepid"], true);
        notes = doc["notes"].clone();
        if u(&notes["unreadable_processes"]) == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("hidden processes counted as unreadable in every scan: {notes}");
}

//! Objects and processes with hostile names: spaces, newlines, tabs, bytes that are not UTF-8,
//! terminal escape sequences, and the text ` (deleted)` that the kernel itself appends to
//! unlinked files. Each object must keep its identity (kind, device, inode) and exact sizes;
//! tables must print no raw control character (they are escaped: `\n`, `\t`, `\x1b`); JSON must
//! stay valid and carry the name. Names that are not UTF-8 are carried lossily (U+FFFD in place
//! of each bad sequence, docs/json.md): identity is device and inode, never the name.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Names for every kind: each hostile feature alone, then all together.
const NAMES: &[&[u8]] = &[
    b"sp ace  twice",
    b"new\nline",
    b"tab\there",
    b"bad\xff\xfeutf8",
    b"\x1b[31mred\x1b[0m\x1b[2J",
    b"x (deleted)",
    b"\xc2\x9b C1 csi",
    b"all \n\t\xff\x1b]0;title\x07 (deleted)",
];

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What the table prints for a name: control characters escaped (render::units::escape).
fn escaped(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Runs a table view; asserts success and that no control character but newline is printed.
fn table(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "shmwho {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("table output is UTF-8");
    if let Some((i, c)) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\n')
    {
        let from = text[..i].rfind('\n').map_or(0, |n| n + 1);
        panic!(
            "shmwho {args:?} printed raw {c:?} in line: {:?}",
            &text[from..text[i..].find('\n').map_or(text.len(), |n| i + n)]
        );
    }
    text
}

/// A memfd named with raw bytes (`memfd_create` takes any bytes but NUL).
fn memfd(name: &[u8], pages: u64, written: u64) -> OwnedFd {
    let c = CString::new(name).unwrap();
    // SAFETY: plain syscall with a valid C string.
    let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: the fd was just created and is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ftruncate(fd.as_raw_fd(), pages * page());
    pwrite_pages(fd.as_raw_fd(), 0, written);
    fd
}

/// A file created by raw path, unlinked on drop (if still linked).
struct FileGuard {
    path: PathBuf,
    fd: Option<OwnedFd>,
}

impl FileGuard {
    fn create(path: PathBuf, pages: u64, written: u64) -> FileGuard {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: plain syscall with a valid C string.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600,
            )
        };
        assert!(
            fd >= 0,
            "create {path:?}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the fd was just opened and is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        ftruncate(fd.as_raw_fd(), pages * page());
        pwrite_pages(fd.as_raw_fd(), 0, written);
        FileGuard { path, fd: Some(fd) }
    }

    fn raw(&self) -> i32 {
        self.fd.as_ref().unwrap().as_raw_fd()
    }

    fn identity(&self) -> (String, u64) {
        fd_identity(self.raw())
    }

    fn unlink(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for FileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A tmpfs mounted at a path with a hostile name (root only); lazily unmounted on drop.
struct HostileMount {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl HostileMount {
    fn new(name: &[u8]) -> HostileMount {
        let dir = tempfile::Builder::new()
            .prefix("shmwho-hostile-")
            .tempdir()
            .unwrap();
        let path = dir
            .path()
            .canonicalize()
            .unwrap()
            .join(OsStr::from_bytes(name));
        std::fs::create_dir(&path).unwrap();
        let target = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=16m,mode=0700".as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        HostileMount { path, _dir: dir }
    }
}

impl Drop for HostileMount {
    fn drop(&mut self) {
        let target = CString::new(self.path.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C string.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn find<'a>(doc: &'a Value, id: &(String, u64), what: &str) -> &'a Value {
    find_inode(doc, id).unwrap_or_else(|| panic!("{what} {id:?} not listed"))
}

fn assert_sizes(o: &Value, size: u64, resident: u64) {
    assert_eq!(u(&o["size_bytes"]), size, "{o}");
    assert_eq!(u(&o["resident_bytes"]), resident, "{o}");
    assert_eq!(u(&o["swap_bytes"]), 0, "{o}");
    assert_eq!(o["exact"], true, "{o}");
}

#[test]
fn memfds_with_hostile_names() {
    let pg = page();
    let me = my_pid();
    // Each memfd: held by us as an fd; every other one also mapped by a child (maps prints a
    // newline in the name as `\012`, the fd link prints it raw: both must give the same name).
    let fds: Vec<(OwnedFd, u64, u64)> = NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (pages, written) = (5 + i as u64, 1 + i as u64);
            (memfd(n, pages, written), pages, written)
        })
        .collect();
    let mut children = Vec::new();
    for (i, (fd, pages, _)) in fds.iter().enumerate() {
        if i % 2 == 1 {
            let (raw, len) = (fd.as_raw_fd(), (*pages * pg) as usize);
            children.push(Some(fork_child(&[], &[raw], After::Pause, move || {
                child::map_and_close(raw, len, 5);
                0
            })));
        } else {
            children.push(None);
        }
    }

    let doc = objects_doc();
    for (i, ((fd, pages, written), name)) in fds.iter().zip(NAMES).enumerate() {
        let id = fd_identity(fd.as_raw_fd());
        let o = find(&doc, &id, &format!("memfd {:?}", lossy(name)));
        assert_eq!(o["kind"], "memfd");
        assert_eq!(o["name"], lossy(name), "{o}");
        assert_sizes(o, pages * pg, written * pg);
        let mut want = vec![fd_h(me)];
        if let Some(c) = &children[i] {
            want.push(map(c.pid()));
        }
        assert_eq!(holders(o), sorted(want), "{o}");
    }

    let text = table(&["--kind", "memfd"]);
    for name in NAMES {
        let shown = escaped(&format!("memfd:{}", lossy(name)));
        assert!(text.contains(&shown), "{shown:?} not in:\n{text}");
    }
    table(&["procs"]);
}

fn fd_h(pid: i64) -> (i64, String) {
    (pid, "fd".to_string())
}

#[test]
fn dev_shm_files_with_hostile_names() {
    let pg = page();
    let root = is_root();
    let tag = unique();
    // Unheld (found by walking /dev/shm), mapped by a child (found through maps), and, as
    // root, unlinked while a child maps it (found through maps, measured through map_files).
    struct Case {
        guard: FileGuard,
        id: (String, u64),
        pages: u64,
        written: u64,
        child: Option<Child>,
        unlinked: bool,
    }
    let mut cases = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let mut path = format!("/dev/shm/shmwho-test-{tag}-{i}-").into_bytes();
        path.extend_from_slice(name);
        let (pages, written) = (3 + i as u64, 1 + i as u64);
        let guard = FileGuard::create(PathBuf::from(OsStr::from_bytes(&path)), pages, written);
        let id = guard.identity();
        let mode = i % 3;
        let child = (mode > 0).then(|| {
            let (raw, len) = (guard.raw(), (pages * pg) as usize);
            fork_child(&[], &[raw], After::Pause, move || {
                child::map_and_close(raw, len, 5);
                0
            })
        });
        let unlinked = mode == 2 && root;
        if unlinked {
            guard.unlink();
        }
        cases.push(Case {
            guard,
            id,
            pages,
            written,
            child,
            unlinked,
        });
    }
    for c in &mut cases {
        c.guard.fd = None; // held only by the child, or by nobody
    }

    let doc = objects_doc();
    for c in &cases {
        let o = find(&doc, &c.id, &format!("{:?}", c.guard.path));
        assert_eq!(o["kind"], "posix_shm", "{o}");
        assert_eq!(o["path"], lossy(c.guard.path.as_os_str().as_bytes()), "{o}");
        assert_eq!(o["deleted"], c.unlinked, "{o}");
        assert_sizes(o, c.pages * pg, c.written * pg);
        let want: Vec<(i64, String)> = c.child.iter().map(|ch| map(ch.pid())).collect();
        assert_eq!(holders(o), want, "{o}");
    }

    let text = table(&["--kind", "posix_shm"]);
    for c in &cases {
        let mut shown = lossy(c.guard.path.as_os_str().as_bytes());
        if c.unlinked {
            shown.push_str(" (deleted)");
        }
        let shown = escaped(&shown);
        assert!(text.contains(&shown), "{shown:?} not in:\n{text}");
    }
}

/// Files on a tmpfs whose mount point itself is hostile, held as fds or mappings, one of them
/// unlinked while open. Root only (mount).
#[test]
fn tmpfs_files_with_hostile_names() {
    if !require_root("mounts a tmpfs") {
        return;
    }
    let pg = page();
    let mnt = HostileMount::new(b"mnt \t\n\x1b[31m (deleted)");
    let me = my_pid();
    let mut files = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let path = mnt.path.join(OsStr::from_bytes(name));
        let (pages, written) = (2 + i as u64, 1 + i as u64 / 2);
        files.push((FileGuard::create(path, pages, written), pages, written));
    }
    // Every third file is mapped by a child and closed by us; the last is unlinked but kept
    // open by us (deleted-but-open).
    let mut children = Vec::new();
    for (i, (g, pages, _)) in files.iter().enumerate() {
        children.push((i % 3 == 1).then(|| {
            let (raw, len) = (g.raw(), (*pages * pg) as usize);
            fork_child(&[], &[raw], After::Pause, move || {
                child::map_and_close(raw, len, 5);
                0
            })
        }));
    }
    let ids: Vec<(String, u64)> = files.iter().map(|(g, _, _)| g.identity()).collect();
    for (i, (g, _, _)) in files.iter_mut().enumerate() {
        if children[i].is_some() {
            g.fd = None;
        }
    }
    let last = files.len() - 1;
    files[last].0.unlink();

    let doc = objects_doc();
    for (i, ((g, pages, written), id)) in files.iter().zip(&ids).enumerate() {
        let o = find(&doc, id, &format!("{:?}", g.path));
        assert_eq!(o["kind"], "tmpfs", "{o}");
        assert_eq!(o["path"], lossy(g.path.as_os_str().as_bytes()), "{o}");
        assert_eq!(o["deleted"], i == last, "{o}");
        assert_eq!(
            o["mount_point"],
            lossy(mnt.path.as_os_str().as_bytes()),
            "{o}"
        );
        assert_sizes(o, pages * pg, written * pg);
        let want = match &children[i] {
            Some(c) => vec![map(c.pid())],
            None => vec![fd_h(me)],
        };
        assert_eq!(holders(o), want, "{o}");
    }
    let text = table(&["--kind", "tmpfs"]);
    for (i, (g, _, _)) in files.iter().enumerate() {
        let mut shown = lossy(g.path.as_os_str().as_bytes());
        if i == last {
            shown.push_str(" (deleted)");
        }
        let shown = escaped(&shown);
        assert!(text.contains(&shown), "{shown:?} not in:\n{text}");
    }
}

/// A tmpfs mounted where the path is not UTF-8: mountinfo prints the bytes raw. Files held only
/// as fds are found by matching the fd's target against the mount points, so the mount point
/// must keep its bytes.
#[test]
fn tmpfs_on_a_non_utf8_mount_point() {
    if !require_root("mounts a tmpfs") {
        return;
    }
    let pg = page();
    let mnt = HostileMount::new(b"mnt\xff\xfe");
    let g = FileGuard::create(mnt.path.join("held-by-fd"), 4, 3);
    let id = g.identity();
    let doc = objects_doc();
    let o = find(&doc, &id, "file on a non-UTF-8 mount point, held as an fd");
    assert_eq!(o["kind"], "tmpfs", "{o}");
    assert_eq!(o["path"], lossy(g.path.as_os_str().as_bytes()), "{o}");
    assert_sizes(o, 4 * pg, 3 * pg);
    assert_eq!(holders(o), vec![fd_h(my_pid())]);
}

/// A process whose command is hostile (`prctl(PR_SET_NAME)`; `/proc/PID/stat` prints it raw):
/// it owns an object, so it appears in the OWNER column, and in the procs view.
#[test]
fn process_with_a_hostile_command() {
    let pg = page();
    let comm: &[u8] = b"\x1b[31mev\nil\t\xff";
    let comm_c = CString::new(comm).unwrap();
    let comm_ptr = comm_c.as_ptr() as usize;
    let name_c = CString::new(&b"owned by a hostile comm"[..]).unwrap();
    let name_ptr = name_c.as_ptr() as usize;
    let c = fork_child(&[], &[], After::Pause, move || {
        // SAFETY (child): raw syscalls only; the strings live in the parent's memory, which
        // the child shares copy-on-write.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, comm_ptr as libc::c_ulong, 0, 0, 0);
            let fd = libc::memfd_create(name_ptr as *const libc::c_char, libc::MFD_CLOEXEC);
            if fd < 0 || libc::ftruncate(fd, (4 * pg) as libc::off_t) < 0 {
                child::fail(3);
            }
            let addr = child::map(fd, (4 * pg) as usize, 5);
            child::touch(addr, 0, 2, pg);
            fd as i64
        }
    });
    let id = path_identity(Path::new(&format!("/proc/{}/fd/{}", c.pid(), c.value)));
    let doc = objects_doc();
    let o = find(&doc, &id, "the hostile process's memfd");
    assert_sizes(o, 4 * pg, 2 * pg);
    assert_eq!(owner_pid(o), Some(c.pid()));
    assert_eq!(o["owner"]["comm"], lossy(comm), "{o}");
    for h in o["holders"].as_array().unwrap() {
        assert_eq!(h["comm"], lossy(comm), "{o}");
    }

    let shown = escaped(&lossy(comm));
    // OWNER names a process by its title when it has one (a forked child keeps the test
    // binary's command line), else by its command.
    let owner_name = o["owner"]["title"]
        .as_str()
        .map_or_else(|| shown.clone(), escaped);
    let text = table(&["--kind", "memfd"]);
    assert!(
        text.contains(&format!("{} {owner_name}", c.pid())),
        "owner {owner_name:?} not in:\n{text}"
    );
    let pid = c.pid().to_string();
    let text = table(&["procs", "--pid", &pid]);
    assert!(text.contains(&shown), "{shown:?} not in:\n{text}");
    table(&["procs", "--by", "command"]);
    let doc = json(&["procs", "--json", "--pid", &pid]);
    assert_eq!(process(&doc, c.pid()).unwrap()["comm"], lossy(comm));
}

//! An actor: a process of this test binary (spawned, forked or exec'ed) that makes, maps, writes
//! and passes shared-memory objects on the runner's command, over a Unix socket.
//!
//! Started fresh (not forked from the multi-threaded runner), it is single-threaded, so it may
//! fork and allocate freely. It holds only what the runner told it to: its own fds are the
//! control socket (close-on-exec) and the objects' fds.
//!
//! Protocol: one command per line, one reply line: `ok [VALUES]`, `skip REASON` (the kernel
//! refused as documented, e.g. a sealed memfd), or `err REASON` (the test fails).

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;

pub const ENV_SOCKET: &str = "SHMWHO_ORACLE_ACTOR";
/// `OBJ:FD,...`: fds an exec'ed actor keeps.
const ENV_FDS: &str = "SHMWHO_ORACLE_FDS";
/// Set: the actor unshares IPC and mount namespaces before it serves.
pub const ENV_NS: &str = "SHMWHO_ORACLE_NS";

static EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

struct Map {
    obj: u32,
    addr: usize,
    len: usize,
    shared: bool,
    sysv: bool,
}

#[derive(Default)]
struct State {
    fds: Vec<(u32, RawFd)>,
    maps: Vec<Map>,
}

fn page() -> usize {
    rustix::param::page_size()
}

fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

/// Entry point of an actor process.
pub fn run(socket: &str) -> ! {
    // Children that exit are reaped by the kernel: no zombies to tell from live holders.
    // SAFETY: setting a signal disposition.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut st = State::default();
    if let Ok(list) = std::env::var(ENV_FDS) {
        for item in list.split(',').filter(|s| !s.is_empty()) {
            let (o, fd) = item.split_once(':').expect("OBJ:FD");
            st.fds.push((o.parse().unwrap(), fd.parse().unwrap()));
        }
    }
    // Read now: /proc/self/exe is gone once the leader thread exits.
    let _ = EXE.set(std::env::current_exe().expect("current_exe"));
    if std::env::var_os(ENV_NS).is_some() {
        enter_namespaces();
    }
    let stream = connect(socket);
    serve(socket.to_string(), stream, st)
}

/// A container of its own, as tests/containers.rs makes one: new IPC and mount namespaces,
/// `/` made private (nothing propagates back), its own tmpfs on /dev/shm. Still single-threaded
/// here, as `unshare(CLONE_NEWNS)` requires. The runner's socket and the test's mounts stay
/// reachable: the new mount namespace starts as a copy.
fn enter_namespaces() {
    // SAFETY: plain syscalls with NUL-terminated strings.
    let ok = unsafe {
        libc::unshare(libc::CLONE_NEWIPC | libc::CLONE_NEWNS) == 0
            && libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) == 0
            && libc::mount(
                c"tmpfs".as_ptr(),
                c"/dev/shm".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            ) == 0
    };
    if !ok {
        eprintln!("oracle actor: namespaces: {}", errno());
        std::process::exit(92);
    }
}

fn connect(socket: &str) -> UnixStream {
    let mut s = UnixStream::connect(socket).unwrap_or_else(|_| std::process::exit(90));
    writeln!(s, "hello {}", std::process::id()).unwrap_or_else(|_| std::process::exit(91));
    s
}

fn serve(socket: String, stream: UnixStream, mut st: State) -> ! {
    let mut out = stream.try_clone().expect("clone socket");
    let mut lines = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            std::process::exit(0); // the runner is gone
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.first().copied() {
            Some("leader_exit") => {
                let stream = lines.into_inner();
                let sock = socket.clone();
                let pid = std::process::id();
                std::thread::spawn(move || {
                    // Reply once the leader is a zombie, so a scan sees the state asked for.
                    let path = format!("/proc/{pid}/stat");
                    for _ in 0..2000 {
                        let s = std::fs::read_to_string(&path).unwrap_or_default();
                        if s.rsplit_once(')')
                            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                        {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    let mut o = stream.try_clone().unwrap();
                    writeln!(o, "ok").unwrap();
                    serve(sock, stream, st)
                });
                // SAFETY: exits the calling (main) thread only, without unwinding.
                unsafe { libc::syscall(libc::SYS_exit, 0) };
                unreachable!()
            }
            Some("fork") => {
                // SAFETY: this process is single-threaded unless its leader exited, and the
                // child only connects and serves (the thread that forked is the one that runs).
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    drop(out);
                    drop(lines);
                    let s = connect(&socket);
                    serve(socket, s, st)
                }
                if pid < 0 {
                    format!("err fork: {}", errno())
                } else {
                    format!("ok {pid}")
                }
            }
            Some("exit") => {
                let _ = writeln!(out, "ok");
                std::process::exit(0)
            }
            Some("exec") => {
                let list: Vec<String> = st.fds.iter().map(|(o, fd)| format!("{o}:{fd}")).collect();
                for (_, fd) in &st.fds {
                    // SAFETY: clearing FD_CLOEXEC (shm_open sets it) so the fd survives exec.
                    unsafe { libc::fcntl(*fd, libc::F_SETFD, 0) };
                }
                let exe = EXE.get().unwrap().clone();
                let _ = writeln!(out, "ok");
                use std::os::unix::process::CommandExt;
                // It keeps its namespaces: no second unshare.
                let e = std::process::Command::new(exe)
                    .env_remove(ENV_NS)
                    .env(ENV_SOCKET, &socket)
                    .env(ENV_FDS, list.join(","))
                    .exec();
                panic!("exec: {e}");
            }
            Some("recv") => {
                let _ = writeln!(out, "ready");
                let obj: u32 = words[1].parse().unwrap();
                match recv_fd(lines.get_ref().as_raw_fd(), false) {
                    Some(fd) => {
                        st.fds.push((obj, fd));
                        "ok".to_string()
                    }
                    None => format!("err recvmsg: {}", errno()),
                }
            }
            Some("send") => {
                let obj: u32 = words[1].parse().unwrap();
                let fd = st.fds.iter().find(|f| f.0 == obj).map(|f| f.1).unwrap();
                send_fd(out.as_raw_fd(), fd);
                continue; // the runner reads the byte and the fd, no line
            }
            Some(_) => op(&mut st, &words),
            None => "err empty command".to_string(),
        };
        if writeln!(out, "{reply}").is_err() {
            std::process::exit(0);
        }
    }
}

fn num(words: &[&str], i: usize) -> usize {
    words[i].parse().expect("number")
}

fn fd_of(st: &State, obj: u32) -> Option<RawFd> {
    st.fds.iter().find(|f| f.0 == obj).map(|f| f.1)
}

fn shared_map(st: &State, obj: u32) -> Option<&Map> {
    st.maps.iter().find(|m| m.obj == obj && m.shared)
}

/// Object operations; ranges are in pages.
fn op(st: &mut State, w: &[&str]) -> String {
    let pg = page();
    let obj: u32 = w[1].parse().unwrap();
    let rc = |r: libc::c_long, what: &str| -> Result<libc::c_long, String> {
        if r < 0 {
            Err(format!("{what}: {}", errno()))
        } else {
            Ok(r)
        }
    };
    let res: Result<String, String> = (|| {
        // SAFETY (whole block): plain syscalls on fds and mappings this actor owns; memory is
        // written only inside mappings of the object's current size, which the runner tracks.
        unsafe {
            match w[0] {
                "anon" => {
                    // anon OBJ PAGES [h]: h for MAP_HUGETLB (PAGES whole huge pages).
                    let len = num(w, 2) * pg;
                    let huge = w.get(3) == Some(&"h");
                    let a = libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED
                            | libc::MAP_ANONYMOUS
                            | if huge { libc::MAP_HUGETLB } else { 0 },
                        -1,
                        0,
                    );
                    if a == libc::MAP_FAILED {
                        return pool_short(huge, "mmap");
                    }
                    st.maps.push(Map {
                        obj,
                        addr: a as usize,
                        len,
                        shared: true,
                        sysv: false,
                    });
                    Ok(String::new())
                }
                "memfd" | "posix" | "tmpfs" => {
                    let len = num(w, 2) * pg;
                    let fd = match w[0] {
                        "memfd" => {
                            let mut flags = if w[3] == "1" {
                                libc::MFD_ALLOW_SEALING
                            } else {
                                0
                            };
                            if w.get(4) == Some(&"h") {
                                flags |= libc::MFD_HUGETLB | libc::MFD_HUGE_2MB;
                            }
                            libc::memfd_create(c"oracle".as_ptr(), flags)
                        }
                        "posix" => {
                            let n = CString::new(w[3]).unwrap();
                            libc::shm_open(
                                n.as_ptr(),
                                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                                0o600,
                            )
                        }
                        _ => {
                            let n = CString::new(w[3]).unwrap();
                            libc::open(
                                n.as_ptr(),
                                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                                0o600,
                            )
                        }
                    };
                    rc(fd as _, w[0])?;
                    rc(libc::ftruncate(fd, len as _) as _, "ftruncate")?;
                    st.fds.push((obj, fd));
                    Ok(String::new())
                }
                "sysv" => {
                    let len = num(w, 2) * pg;
                    let huge = w.get(3) == Some(&"h");
                    let flags = libc::IPC_CREAT | 0o600 | if huge { libc::SHM_HUGETLB } else { 0 };
                    let id = libc::shmget(libc::IPC_PRIVATE, len, flags);
                    if id < 0 {
                        return pool_short(huge, "shmget");
                    }
                    let a = libc::shmat(id as i32, std::ptr::null(), 0);
                    if a as isize == -1 {
                        return Err(format!("shmat: {}", errno()));
                    }
                    st.maps.push(Map {
                        obj,
                        addr: a as usize,
                        len,
                        shared: true,
                        sysv: true,
                    });
                    Ok(format!("{id}"))
                }
                "map" | "mapp" => {
                    // map OBJ PAGES [SHMID|h]: a second mapping (or attachment) of the object;
                    // h for a hugetlb file, whose mapping reserves pool pages.
                    let len = num(w, 2) * pg;
                    let huge = w.get(3) == Some(&"h");
                    if let Some(id) = w.get(3).filter(|_| !huge) {
                        let a = libc::shmat(id.parse().unwrap(), std::ptr::null(), 0);
                        if a as isize == -1 {
                            return Err(format!("shmat: {}", errno()));
                        }
                        st.maps.push(Map {
                            obj,
                            addr: a as usize,
                            len,
                            shared: true,
                            sysv: true,
                        });
                        return Ok(String::new());
                    }
                    let fd = fd_of(st, obj).ok_or("no fd")?;
                    let shared = w[0] == "map";
                    let flags = if shared {
                        libc::MAP_SHARED
                    } else {
                        libc::MAP_PRIVATE
                    };
                    let a = libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        flags,
                        fd,
                        0,
                    );
                    if a == libc::MAP_FAILED {
                        return pool_short(huge, "mmap");
                    }
                    if !shared {
                        // A copy-on-write page of our own: not the object's.
                        std::ptr::write_volatile(a as *mut u8, 7);
                    }
                    st.maps.push(Map {
                        obj,
                        addr: a as usize,
                        len,
                        shared,
                        sysv: false,
                    });
                    Ok(String::new())
                }
                "write" => {
                    let (first, n) = (num(w, 2), num(w, 3));
                    if let (Some(fd), "fd") = (fd_of(st, obj), w[4]) {
                        let buf = vec![0x5au8; n * pg];
                        let r = libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), (first * pg) as _);
                        if r as usize != buf.len() {
                            return Err(format!("pwrite: {}", errno()));
                        }
                    } else {
                        let m = shared_map(st, obj).ok_or("no mapping")?;
                        for i in first..(first + n).min(m.len / pg) {
                            std::ptr::write_volatile((m.addr + i * pg) as *mut u8, 0xa5);
                        }
                    }
                    Ok(String::new())
                }
                "falloc" | "punch" => {
                    let fd = fd_of(st, obj).ok_or("no fd")?;
                    let mode = if w[0] == "punch" {
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
                    } else {
                        libc::FALLOC_FL_KEEP_SIZE
                    };
                    rc(
                        libc::fallocate(fd, mode, (num(w, 2) * pg) as _, (num(w, 3) * pg) as _)
                            as _,
                        w[0],
                    )?;
                    Ok(String::new())
                }
                "trunc" => {
                    let fd = fd_of(st, obj).ok_or("no fd")?;
                    if libc::ftruncate(fd, (num(w, 2) * pg) as _) < 0 {
                        let e = std::io::Error::last_os_error();
                        if e.raw_os_error() == Some(libc::EPERM) {
                            return Ok("skip sealed".to_string());
                        }
                        return Err(format!("ftruncate: {e}"));
                    }
                    Ok(String::new())
                }
                "seal" => {
                    let fd = fd_of(st, obj).ok_or("no fd")?;
                    rc(
                        libc::fcntl(
                            fd,
                            libc::F_ADD_SEALS,
                            libc::F_SEAL_GROW | libc::F_SEAL_SHRINK,
                        ) as _,
                        "seal",
                    )?;
                    Ok(String::new())
                }
                "madvrm" | "pageout" => {
                    let advice = if w[0] == "madvrm" {
                        libc::MADV_REMOVE
                    } else {
                        libc::MADV_PAGEOUT
                    };
                    let m = shared_map(st, obj).ok_or("no mapping")?;
                    rc(libc::madvise(m.addr as *mut _, m.len, advice) as _, w[0])?;
                    Ok(String::new())
                }
                "mremap" => {
                    // Shrink the first shared mapping to NEW pages, moving it elsewhere.
                    let new = num(w, 2) * pg;
                    let i = st
                        .maps
                        .iter()
                        .position(|m| m.obj == obj && m.shared && !m.sysv)
                        .ok_or("no mapping")?;
                    let m = &mut st.maps[i];
                    let a = libc::mremap(m.addr as *mut _, m.len, new, 0);
                    if a == libc::MAP_FAILED {
                        return Err(format!("mremap: {}", errno()));
                    }
                    (m.addr, m.len) = (a as usize, new);
                    Ok(String::new())
                }
                "unmap" => {
                    let i = st
                        .maps
                        .iter()
                        .rposition(|m| m.obj == obj)
                        .ok_or("no mapping")?;
                    let m = st.maps.remove(i);
                    if m.sysv {
                        rc(libc::shmdt(m.addr as *const _) as _, "shmdt")?;
                    } else {
                        rc(libc::munmap(m.addr as *mut _, m.len) as _, "munmap")?;
                    }
                    Ok(String::new())
                }
                "close" => {
                    let i = st.fds.iter().rposition(|f| f.0 == obj).ok_or("no fd")?;
                    libc::close(st.fds.remove(i).1);
                    Ok(String::new())
                }
                "dup" => {
                    let fd = rc(libc::dup(fd_of(st, obj).ok_or("no fd")?) as _, "dup")?;
                    st.fds.push((obj, fd as RawFd));
                    Ok(String::new())
                }
                "mapfd" => {
                    // What checkpoint/restore tools do: open the mapping's map_files entry.
                    let m = shared_map(st, obj).ok_or("no mapping")?;
                    let p = CString::new(format!(
                        "/proc/self/map_files/{:x}-{:x}",
                        m.addr,
                        m.addr + m.len
                    ))
                    .unwrap();
                    let fd = rc(libc::open(p.as_ptr(), libc::O_RDWR) as _, "open map_files")?;
                    st.fds.push((obj, fd as RawFd));
                    Ok(String::new())
                }
                "rmid" => {
                    rc(
                        libc::shmctl(num(w, 2) as i32, libc::IPC_RMID, std::ptr::null_mut()) as _,
                        "IPC_RMID",
                    )?;
                    Ok(String::new())
                }
                "unlink" => {
                    let n = CString::new(w[2]).unwrap();
                    rc(libc::unlink(n.as_ptr()) as _, "unlink")?;
                    Ok(String::new())
                }
                "sysvrow" => {
                    // sysvrow OBJ SHMID: that segment's line of /proc/sysvipc/shm as this
                    // actor's IPC namespace has it (empty when absent).
                    let t =
                        std::fs::read_to_string("/proc/sysvipc/shm").map_err(|e| e.to_string())?;
                    let row = t
                        .lines()
                        .skip(1)
                        .find(|l| l.split_whitespace().nth(1) == w.get(2).copied());
                    Ok(row
                        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                        .unwrap_or_default())
                }
                "stat" => {
                    // stat OBJ PATH: a file by its path in this actor's mount namespace.
                    let s = rustix::fs::stat(w[2]).map_err(|e| format!("stat {}: {e}", w[2]))?;
                    Ok(format!(
                        "{} {} {} {}",
                        s.st_dev, s.st_ino, s.st_size, s.st_blocks
                    ))
                }
                "truth" => {
                    // dev ino size blocks of the object, through an fd or map_files of ours.
                    let path = if let Some(fd) = fd_of(st, obj) {
                        format!("/proc/thread-self/fd/{fd}")
                    } else {
                        // map_files is per process, not per thread: gone with the leader.
                        let m = st.maps.iter().find(|m| m.obj == obj).ok_or("not held")?;
                        format!("/proc/self/map_files/{:x}-{:x}", m.addr, m.addr + m.len)
                    };
                    let s = match rustix::fs::stat(path.as_str()) {
                        Ok(s) => s,
                        Err(rustix::io::Errno::NOENT | rustix::io::Errno::SRCH)
                            if path.starts_with("/proc/self/map_files") =>
                        {
                            let m = st.maps.iter().find(|m| m.obj == obj).unwrap();
                            let (dev, ino) = maps_identity(m.addr).ok_or("not in maps")?;
                            return Ok(format!("unmeasurable {dev} {ino}"));
                        }
                        Err(e) => return Err(format!("stat {path}: {e}")),
                    };
                    Ok(format!(
                        "{} {} {} {}",
                        s.st_dev, s.st_ino, s.st_size, s.st_blocks
                    ))
                }
                other => Err(format!("unknown command {other}")),
            }
        }
    })();
    match res {
        Ok(v) if v.starts_with("skip") => v,
        Ok(v) => format!("ok {v}").trim_end().to_string(),
        Err(e) => format!("err {e}"),
    }
}

/// The reply to a hugetlb creation or mapping the pool cannot back (other runs on the host take
/// pages from it too): skipped, not failed. Any other failure is an error.
fn pool_short(huge: bool, what: &str) -> Result<String, String> {
    let e = std::io::Error::last_os_error();
    if huge && matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::ENOSPC)) {
        return Ok("skip huge page pool short".into());
    }
    Err(format!("{what}: {e}"))
}

/// (st_dev, inode) of the mapping at `addr`, from this thread's maps (device in hex there).
fn maps_identity(addr: usize) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/maps").ok()?;
    let start = format!("{addr:x}-");
    let line = text.lines().find(|l| l.starts_with(&start))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let (maj, min) = f.get(3)?.split_once(':')?;
    let dev = rustix::fs::makedev(
        u32::from_str_radix(maj, 16).ok()?,
        u32::from_str_radix(min, 16).ok()?,
    );
    Some((dev, f.get(4)?.parse().ok()?))
}

/// Sends one byte with `fd` attached (SCM_RIGHTS).
pub fn send_fd(sock: RawFd, fd: RawFd) {
    let mut byte = [b'F'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; every pointer in it points into live buffers above.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        assert_eq!(libc::sendmsg(sock, &msg, 0), 1, "sendmsg: {}", errno());
    }
}

/// Receives one byte and the fd attached to it. An actor keeps it across exec; the runner's
/// copy is close-on-exec so no process it spawns meanwhile inherits it.
pub fn recv_fd(sock: RawFd, cloexec: bool) -> Option<RawFd> {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: as in send_fd.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: as in send_fd; the kernel fills the buffers we point at.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let flags = if cloexec { libc::MSG_CMSG_CLOEXEC } else { 0 };
        if libc::recvmsg(sock, &mut msg, flags) != 1 {
            return None;
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>()))
    }
}

/// Keeps `fd` across the runner's own use: an `OwnedFd` for the runner side of a transfer.
pub fn owned(fd: RawFd) -> std::os::fd::OwnedFd {
    // SAFETY: `fd` was just received and is ours alone.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

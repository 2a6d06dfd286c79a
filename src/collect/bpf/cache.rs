//! What the programs need of the kernel's BTF (function ids, struct ids, member offsets), kept
//! for the rest of the boot in `/run/shmwho/bpf-layout`: reading it is one small file, where
//! walking the BTF costs ~1.4 ms of a scan's ~23 ms on the 300-worker pool of
//! `bench/ratios.sh`.
//!
//! Root's own file in a directory only root can write (`/run` is root's): it is read only if
//! the directory and the file are root's and no one else may write them, and written as
//! [`crate::output_file::write_atomic`] writes (never through a planted link). A stale or
//! wrong answer cannot make the kernel read memory it should not (the verifier checks every
//! access against the BTF itself); programs that then fail to load are loaded again from the
//! BTF, and the file rewritten.

use super::btf::Btf;
use rustix::fs::{Mode, OFlags};
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

const DIR: &str = "/run/shmwho";
const FILE: &str = "/run/shmwho/bpf-layout";

/// Questions a program's layout asks of the BTF.
pub(super) trait Lookup {
    /// The id of function `name`.
    fn func(&self, name: &str) -> Option<u32>;
    /// The id of struct `name`.
    fn struct_id(&self, name: &str) -> Option<u32>;
    /// The byte offset of member `member` (a dotted path) of struct `name`.
    fn offset(&self, name: &str, member: &str) -> Option<u32>;
    /// The size of struct `name`.
    fn size(&self, name: &str) -> Option<u32>;
}

/// The BTF itself, with every answer noted for the cache.
pub(super) struct Recorded<'a, 'b> {
    pub btf: &'b Btf<'a>,
    answers: RefCell<Vec<(String, u32)>>,
}

impl<'a, 'b> Recorded<'a, 'b> {
    pub fn new(btf: &'b Btf<'a>) -> Self {
        Recorded {
            btf,
            answers: RefCell::new(Vec::new()),
        }
    }

    /// Notes an answer, a missing one too (as [`ABSENT`]): a cache that lacks a question was
    /// written for programs that asked less, and is not used ([`Cached::missed`]).
    fn note(&self, key: String, v: Option<u32>) -> Option<u32> {
        self.answers.borrow_mut().push((key, v.unwrap_or(ABSENT)));
        v
    }
}

impl Lookup for Recorded<'_, '_> {
    fn func(&self, name: &str) -> Option<u32> {
        self.note(format!("f:{name}"), self.btf.func(name))
    }
    fn struct_id(&self, name: &str) -> Option<u32> {
        self.note(format!("s:{name}"), self.btf.struct_id(name))
    }
    fn offset(&self, name: &str, member: &str) -> Option<u32> {
        let v = self.btf.member(name, member).map(|m| m.offset);
        self.note(format!("m:{name}.{member}"), v)
    }
    fn size(&self, name: &str) -> Option<u32> {
        self.note(format!("z:{name}"), self.btf.size(name))
    }
}

/// The answer noted for a question the BTF has no answer to.
const ABSENT: u32 = u32::MAX;

/// Answers read back from the cache, and whether a question found none.
pub(super) struct Cached(HashMap<String, u32>, std::cell::Cell<bool>);

impl Cached {
    fn get(&self, key: String) -> Option<u32> {
        match self.0.get(&key) {
            Some(&v) => (v != ABSENT).then_some(v),
            None => {
                self.1.set(true);
                None
            }
        }
    }

    /// Whether a question was not in the cache: it was written for programs that asked less
    /// (an older shmwho), so its layouts may lack what this one can use.
    pub fn missed(&self) -> bool {
        self.1.get()
    }
}

impl Lookup for Cached {
    fn func(&self, name: &str) -> Option<u32> {
        self.get(format!("f:{name}"))
    }
    fn struct_id(&self, name: &str) -> Option<u32> {
        self.get(format!("s:{name}"))
    }
    fn offset(&self, name: &str, member: &str) -> Option<u32> {
        self.get(format!("m:{name}.{member}"))
    }
    fn size(&self, name: &str) -> Option<u32> {
        self.get(format!("z:{name}"))
    }
}

/// This boot's kernel BTF: the boot id and the BTF's size (it cannot change within a boot).
fn key() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let size = std::fs::metadata("/sys/kernel/btf/vmlinux").ok()?.len();
    Some(format!("shmwho bpf layout 2 {} {size}", boot.trim()))
}

/// Root's, and writable by no one else.
fn trusted(md: &std::fs::Metadata) -> bool {
    md.uid() == 0 && md.mode() & 0o022 == 0
}

/// The cached answers of this boot, if there are any to trust.
pub(super) fn read() -> Option<Cached> {
    let key = key()?;
    let dir = std::fs::symlink_metadata(DIR).ok()?;
    if !dir.is_dir() || !trusted(&dir) {
        return None;
    }
    let fd = rustix::fs::open(
        FILE,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let file = std::fs::File::from(fd);
    let md = file.metadata().ok()?;
    if !md.is_file() || !trusted(&md) || md.len() > 64 * 1024 {
        return None;
    }
    let text = std::io::read_to_string(file).ok()?;
    parse(&text, &key)
}

fn parse(text: &str, key: &str) -> Option<Cached> {
    let mut lines = text.lines();
    if lines.next()? != key {
        return None;
    }
    let answers = lines
        .map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect::<Option<HashMap<_, _>>>()?;
    Some(Cached(answers, std::cell::Cell::new(false)))
}

/// Keeps `recorded`'s answers for this boot; failures are ignored (the cache only saves time).
pub(super) fn write(recorded: &Recorded<'_, '_>) {
    let Some(key) = key() else { return };
    let mut text = key;
    for (k, v) in recorded.answers.borrow().iter() {
        text.push_str(&format!("\n{k} {v}"));
    }
    text.push('\n');
    let _ = rustix::fs::mkdir(DIR, Mode::from_raw_mode(0o700));
    match std::fs::symlink_metadata(DIR) {
        Ok(md) if md.is_dir() && trusted(&md) => {}
        _ => return,
    }
    let _ = crate::output_file::write_atomic(Path::new(FILE), text.as_bytes(), 0o600);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_back_only_under_their_key() {
        let text = "K 1\nf:bpf_iter_task 7\nm:task_struct.pid 1234\nm:mm_struct.x 4294967295\n";
        let c = parse(text, "K 1").unwrap();
        assert_eq!(c.func("bpf_iter_task"), Some(7));
        assert_eq!(c.offset("task_struct", "pid"), Some(1234));
        assert_eq!(c.offset("mm_struct", "x"), None, "absent from the BTF");
        assert!(!c.missed());
        assert_eq!(c.struct_id("file"), None);
        assert!(c.missed(), "a question the cache was not written for");
        assert!(parse(text, "K 2").is_none(), "another boot or kernel");
        assert!(parse("K 1\nf:x seven\n", "K 1").is_none());
        assert!(parse("", "K 1").is_none());
    }
}

//! `/proc/PID/mountinfo`: the one parser behind the tmpfs table, the cgroup hierarchies and the
//! hidepid check.
//!
//! Hand-written: procfs-core parses `&str`, so a non-UTF-8 mount point would come back lossy
//! and no longer prefix the fd targets under it, and it fails a whole line on an unknown
//! optional field; the fields we keep are raw bytes and two numbers.
//!
//! A line is `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE
//! SUPER_OPTIONS`; ROOT, MOUNT_POINT and SOURCE escape space, tab, newline and backslash as
//! `\ooo`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// Device of the mounted filesystem (`st_dev` of files on it).
    pub dev: u64,
    /// The directory of the filesystem mounted here (`/` unless a subtree is bind-mounted).
    pub root: Vec<u8>,
    /// Where it is mounted, in the reader's mount namespace.
    pub mount_point: PathBuf,
    /// Filesystem type (`tmpfs`, `cgroup2`, `proc`, ...).
    pub fs_type: String,
    /// Superblock options, comma-separated (`rw,size=1024k`, `rw,memory`, `rw,hidepid=2`).
    pub super_options: String,
}

impl MountEntry {
    /// Whether the superblock options include `opt` exactly.
    pub fn has_option(&self, opt: &str) -> bool {
        self.super_options.split(',').any(|o| o == opt)
    }

    /// The value of superblock option `key=value`.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.super_options
            .split(',')
            .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
    }
}

/// Parses one mountinfo line; `None` for a malformed line.
pub fn parse_line(line: &[u8]) -> Option<MountEntry> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    // Six fixed fields, then optional fields up to a lone `-`, then three more.
    let sep = fields.iter().skip(6).position(|f| *f == b"-")? + 6;
    if fields.len() < sep + 4 {
        return None;
    }
    let majmin = std::str::from_utf8(fields[2]).ok()?;
    let (maj, min) = majmin.split_once(':')?;
    Some(MountEntry {
        dev: rustix::fs::makedev(maj.parse().ok()?, min.parse().ok()?),
        root: unescape_octal(fields[3]),
        mount_point: PathBuf::from(OsString::from_vec(unescape_octal(fields[4]))),
        fs_type: String::from_utf8_lossy(fields[sep + 1]).into_owned(),
        super_options: String::from_utf8_lossy(fields[sep + 3]).into_owned(),
    })
}

/// Parses a whole mountinfo text, skipping malformed lines, so one odd mount does not hide the
/// others.
pub fn parse(text: &[u8]) -> impl Iterator<Item = MountEntry> + '_ {
    text.split(|&b| b == b'\n').filter_map(parse_line)
}

/// The tmpfs mounts in a mountinfo text.
pub fn tmpfs(text: &[u8]) -> Vec<MountEntry> {
    parse(text).filter(|m| m.fs_type == "tmpfs").collect()
}

/// Whether mountinfo shows `/proc` mounted with `hidepid` (other users' processes hidden).
pub fn proc_hidepid(text: &[u8]) -> bool {
    parse(text).any(|m| {
        m.fs_type == "proc"
            && m.mount_point.as_os_str() == "/proc"
            && m.option("hidepid").is_some_and(|v| v != "0" && v != "off")
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`; anything else is kept as is.
pub fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = u32::from(s[i + 1] - b'0') * 64
                + u32::from(s[i + 2] - b'0') * 8
                + u32::from(s[i + 3] - b'0');
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_fixture() {
        let all: Vec<_> = parse(include_bytes!("../../../tests/fixtures/mountinfo.txt")).collect();
        assert!(all
            .iter()
            .any(|m| m.fs_type == "tmpfs" && m.mount_point.as_os_str() == "/dev/shm"));
        assert!(all.iter().any(|m| m.fs_type == "proc"));
    }

    #[test]
    fn fields_and_optional_fields() {
        let m = parse_line(
            b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue",
        )
        .unwrap();
        assert_eq!(m.dev, rustix::fs::makedev(98, 0));
        assert_eq!(m.root, b"/mnt1");
        assert_eq!(m.mount_point, PathBuf::from("/mnt2"));
        assert_eq!(m.fs_type, "ext3");
        assert!(m.has_option("rw"));
        assert_eq!(m.option("errors"), Some("continue"));
        assert_eq!(m.option("err"), None);
    }

    #[test]
    fn escapes_and_non_utf8() {
        let m = parse_line(b"99 24 0:77 / /mnt/my\\040tmp\\012x\\134 rw - tmpfs tmpfs rw").unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/mnt/my tmp\nx\\"));
        let m = parse_line(b"99 24 0:77 / /mnt/\xff\xfe rw - tmpfs tmpfs rw").unwrap();
        assert_eq!(
            m.mount_point.as_os_str().as_encoded_bytes(),
            b"/mnt/\xff\xfe"
        );
        // An escape cut short or out of range stays as written.
        assert_eq!(unescape_octal(b"a\\04"), b"a\\04");
        assert_eq!(unescape_octal(b"a\\777"), b"a\\777");
        assert_eq!(unescape_octal(b"\\0401"), b" 1");
    }

    #[test]
    fn tmpfs_and_hidepid() {
        let text = b"99 24 0:77 / /run rw - tmpfs tmpfs rw\n22 1 0:21 / /proc rw - proc proc rw\n";
        assert_eq!(tmpfs(text).len(), 1);
        assert!(!proc_hidepid(text));
        assert!(proc_hidepid(
            b"22 1 0:21 / /proc rw,relatime - proc proc rw,hidepid=invisible\n"
        ));
        assert!(!proc_hidepid(
            b"22 1 0:21 / /proc rw - proc proc rw,hidepid=off\n"
        ));
        assert!(!proc_hidepid(
            b"22 1 0:21 / /proc2 rw - proc proc rw,hidepid=2\n"
        ));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        for bad in [
            &b""[..],
            b"broken line",
            b"short line - cgroup",
            b"1 2 0:3 / /x rw - tmpfs",
            b"1 2 x:3 / /x rw - tmpfs tmpfs rw",
            b"1 2 0:3 / /x rw tmpfs tmpfs rw",
            b"1 2 0:99999999999 / /x rw - tmpfs tmpfs rw",
        ] {
            assert_eq!(parse_line(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let text = b"broken\n1 2 0:3 / /x rw - tmpfs tmpfs rw\n\n";
        assert_eq!(parse(text).count(), 1);
    }
}

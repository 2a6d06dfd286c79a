//! `/proc/PID/maps` lines.
//!
//! Hand-written: this is the hot path of every scan (all processes, every mapping), and the only
//! fields we keep are a handful of integers and the path bytes.

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsEntry {
    /// First address.
    pub start: u64,
    /// Address after the last.
    pub end: u64,
    /// `s` in the fourth permission column: a MAP_SHARED mapping.
    pub shared: bool,
    /// Offset in the mapped file, in bytes.
    pub offset: u64,
    /// Device major number (hex in maps).
    pub dev_major: u32,
    /// Device minor number (hex in maps).
    pub dev_minor: u32,
    /// Inode number; 0 for anonymous memory.
    pub inode: u64,
    /// The path as the kernel printed it, with `\012` turned back into a newline. It keeps any
    /// trailing ` (deleted)`; see [`strip_deleted`].
    pub path: Vec<u8>,
}

impl MapsEntry {
    /// The device as `st_dev` encodes it.
    pub fn dev(&self) -> u64 {
        rustix::fs::makedev(self.dev_major, self.dev_minor)
    }
}

/// Parses one maps line; `None` for a malformed or truncated line.
pub fn parse_line(line: &[u8]) -> Option<MapsEntry> {
    let mut rest = line;
    let range = next_field(&mut rest)?;
    let perms = next_field(&mut rest)?;
    let offset = next_field(&mut rest)?;
    let dev = next_field(&mut rest)?;
    let inode = next_field(&mut rest)?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let start = hex(&range[..dash])?;
    let end = hex(&range[dash + 1..])?;
    if perms.len() != 4 || end < start {
        return None;
    }
    let colon = dev.iter().position(|&b| b == b':')?;
    let dev_major = u32::try_from(hex(&dev[..colon])?).ok()?;
    let dev_minor = u32::try_from(hex(&dev[colon + 1..])?).ok()?;
    let inode = dec(inode)?;
    // The path is everything after the padding; it may itself contain spaces.
    let path_start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let path = unescape_newlines(&rest[path_start..]);
    Some(MapsEntry {
        start,
        end,
        shared: perms[3] == b's',
        offset: hex(offset)?,
        dev_major,
        dev_minor,
        inode,
        path,
    })
}

/// Parses a whole maps file, skipping malformed lines (a truncated last line, say).
pub fn parse(text: &[u8]) -> impl Iterator<Item = MapsEntry> + '_ {
    text.split(|&b| b == b'\n').filter_map(parse_line)
}

/// The kernel prints a newline in a path as `\012` (and nothing else escaped).
fn unescape_newlines(path: &[u8]) -> Vec<u8> {
    const ESC: &[u8] = b"\\012";
    if !path.windows(ESC.len()).any(|w| w == ESC) {
        return path.to_vec();
    }
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i..].starts_with(ESC) {
            out.push(b'\n');
            i += ESC.len();
        } else {
            out.push(path[i]);
            i += 1;
        }
    }
    out
}

/// Splits off one space-separated field.
fn next_field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let s = *rest;
    let start = s.iter().position(|&b| b != b' ')?;
    let s = &s[start..];
    let len = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
    *rest = &s[len..];
    if len == 0 {
        None
    } else {
        Some(&s[..len])
    }
}

pub(crate) fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = (b as char).to_digit(16)?;
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

pub(crate) fn dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = (b as char).to_digit(10)?;
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Removes one trailing ` (deleted)`, which the kernel appends to unlinked files. Returns whether
/// it was there. A file can be *named* `x (deleted)`: callers that can `stat` the object trust
/// `st_nlink` instead.
pub fn strip_deleted(path: &[u8]) -> (&[u8], bool) {
    const SUFFIX: &[u8] = b" (deleted)";
    match path.strip_suffix(SUFFIX) {
        Some(p) => (p, true),
        None => (path, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anon_shared_line() {
        let e = parse_line(
            b"7f052ea9b000-7f05aba9b000 rw-s 00000000 00:01 733825                     /dev/zero (deleted)",
        )
        .unwrap();
        assert_eq!(e.start, 0x7f052ea9b000);
        assert_eq!(e.end, 0x7f05aba9b000);
        assert!(e.shared);
        assert_eq!((e.dev_major, e.dev_minor), (0, 1));
        assert_eq!(e.inode, 733825);
        assert_eq!(e.path, b"/dev/zero (deleted)");
    }

    #[test]
    fn anonymous_private_has_empty_path() {
        let e = parse_line(b"7ffd1c9e9000-7ffd1ca0a000 rw-p 00000000 00:00 0 ").unwrap();
        assert!(!e.shared);
        assert!(e.path.is_empty());
        let e = parse_line(b"7ffd1c9e9000-7ffd1ca0a000 rw-p 00000000 00:00 0").unwrap();
        assert!(e.path.is_empty());
    }

    #[test]
    fn hostile_paths_keep_spaces_and_newlines() {
        let e = parse_line(
            b"7f00-8f00 rw-s 00001000 00:1b 42                         /dev/shm/a  b (deleted)\\012x (deleted)",
        )
        .unwrap();
        assert_eq!(e.offset, 0x1000);
        assert_eq!(e.dev_minor, 0x1b);
        assert_eq!(e.path, b"/dev/shm/a  b (deleted)\nx (deleted)");
        let (p, deleted) = strip_deleted(&e.path);
        assert!(deleted);
        assert_eq!(p, b"/dev/shm/a  b (deleted)\nx");
    }

    #[test]
    fn truncated_and_garbage_lines_are_skipped() {
        assert_eq!(parse_line(b"7f00-8f00 rw-s 0000"), None);
        assert_eq!(parse_line(b""), None);
        assert_eq!(parse_line(b"zzzz-8f00 rw-s 00000000 00:01 1 /x"), None);
        assert_eq!(parse_line(b"9000-8000 rw-s 00000000 00:01 1 /x"), None);
        assert_eq!(parse_line(b"8000-9000 rw-s 00000000 0001 1 /x"), None);
        let text = b"1000-2000 rw-s 00000000 00:01 5 /dev/zero (deleted)\n3000-40";
        assert_eq!(parse(text).count(), 1);
    }

    #[test]
    fn captured_fixture_parses() {
        let text = include_bytes!("../../../tests/fixtures/maps_lab.txt");
        let entries: Vec<_> = parse(text).collect();
        assert!(entries.len() > 10);
        let shared: Vec<_> = entries.iter().filter(|e| e.shared).collect();
        let paths: Vec<&[u8]> = shared.iter().map(|e| e.path.as_slice()).collect();
        assert!(paths.contains(&&b"/dev/zero (deleted)"[..]), "{paths:?}");
        assert!(paths.iter().any(|p| p.starts_with(b"/SYSV")));
        assert!(paths.iter().any(|p| p.starts_with(b"/memfd:")));
    }
}

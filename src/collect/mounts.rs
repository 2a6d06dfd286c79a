//! tmpfs mounts from `mountinfo`, parsed by procfs-core line by line.

use procfs_core::process::MountInfo;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub dev: u64,
    pub mount_point: PathBuf,
    pub fs_type: String,
}

/// The tmpfs mounts in a mountinfo text. Lines procfs-core cannot parse are skipped, so one odd
/// mount does not hide the others.
pub fn parse_tmpfs(text: &[u8]) -> Vec<Mount> {
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|line| {
            let m = MountInfo::from_line(&String::from_utf8_lossy(line)).ok()?;
            if m.fs_type != "tmpfs" {
                return None;
            }
            let (maj, min) = m.majmin.split_once(':')?;
            // procfs-core takes &str, so a non-UTF-8 mount point would come back lossy and no
            // longer prefix the fd targets under it: take the 5th field's raw bytes instead.
            let raw_point = line.split(|&b| b == b' ').nth(4)?;
            Some(Mount {
                dev: rustix::fs::makedev(maj.parse().ok()?, min.parse().ok()?),
                mount_point: PathBuf::from(OsString::from_vec(unescape_octal(raw_point))),
                fs_type: m.fs_type,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (s[i + 1] - b'0') as u32 * 64
                + (s[i + 2] - b'0') as u32 * 8
                + (s[i + 3] - b'0') as u32;
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

/// Whether mountinfo shows `/proc` mounted with `hidepid` (other users' processes hidden).
pub fn proc_hidepid(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n').any(|line| {
        let line = String::from_utf8_lossy(line);
        let mut f = line.split(' ');
        f.nth(4) == Some("/proc")
            && line.split(" - ").nth(1).is_some_and(|rest| {
                rest.starts_with("proc ")
                    && rest.contains("hidepid=")
                    && !rest.contains("hidepid=0")
                    && !rest.contains("hidepid=off")
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_fixture() {
        let mounts = parse_tmpfs(include_bytes!("../../tests/fixtures/mountinfo.txt"));
        assert!(mounts
            .iter()
            .any(|m| m.mount_point.as_os_str() == "/dev/shm"));
        assert!(mounts.iter().all(|m| m.fs_type == "tmpfs"));
    }

    #[test]
    fn escaped_mount_point() {
        let text = b"99 24 0:77 / /mnt/my\\040tmp\\012x rw,relatime - tmpfs tmpfs rw,size=1024k\nbroken line\n";
        let mounts = parse_tmpfs(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, PathBuf::from("/mnt/my tmp\nx"));
        assert_eq!(mounts[0].dev, rustix::fs::makedev(0, 77));
    }

    #[test]
    fn non_utf8_mount_point_keeps_its_bytes() {
        let mounts = parse_tmpfs(b"99 24 0:77 / /mnt/\xff\xfe rw - tmpfs tmpfs rw\n");
        assert_eq!(
            mounts[0].mount_point.as_os_str().as_encoded_bytes(),
            b"/mnt/\xff\xfe"
        );
    }

    #[test]
    fn hidepid_detection() {
        assert!(proc_hidepid(
            b"22 1 0:21 / /proc rw,relatime - proc proc rw,hidepid=invisible\n"
        ));
        assert!(!proc_hidepid(
            b"22 1 0:21 / /proc rw,relatime - proc proc rw\n"
        ));
    }
}

//! `/proc/PID/status`: the O(1) memory counters any user may read for any process.
//!
//! Hand-written rather than procfs-core's `Status`: that one reads lines as UTF-8, so one
//! process whose name is not UTF-8 fails the whole read, and it builds a HashMap of ~57 owned
//! strings per process where we need seven numbers.

use super::maps::dec;

/// The fields of `/proc/PID/status` shmwho uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// `Name`.
    pub name: String,
    /// `PPid`.
    pub ppid: i32,
    /// Real uid (first of `Uid`).
    pub uid: u32,
    /// `VmRSS` in bytes; absent for kernel threads.
    pub vm_rss: Option<u64>,
    /// `RssAnon` in bytes.
    pub rss_anon: u64,
    /// `RssFile` in bytes.
    pub rss_file: u64,
    /// `RssShmem` in bytes.
    pub rss_shmem: u64,
    /// `VmSwap` in bytes.
    pub vm_swap: u64,
}

/// Parses status text; `None` when a required line (Name, PPid, Uid) is missing (truncated).
pub fn parse(text: &[u8]) -> Option<Status> {
    let mut st = Status::default();
    let (mut have_name, mut have_ppid, mut have_uid) = (false, false, false);
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b"\t").unwrap_or(value);
        match key {
            b"Name" => {
                // The kernel escapes `\n` and `\\` here; keep what it printed.
                st.name = String::from_utf8_lossy(value).into_owned();
                have_name = true;
            }
            b"PPid" => {
                st.ppid = i32::try_from(dec(value.trim_ascii())?).ok()?;
                have_ppid = true;
            }
            b"Uid" => {
                let real = value
                    .split(|b| b.is_ascii_whitespace())
                    .find(|f| !f.is_empty())?;
                st.uid = u32::try_from(dec(real)?).ok()?;
                have_uid = true;
            }
            b"VmRSS" => st.vm_rss = Some(kb(value)?),
            b"RssAnon" => st.rss_anon = kb(value)?,
            b"RssFile" => st.rss_file = kb(value)?,
            b"RssShmem" => st.rss_shmem = kb(value)?,
            b"VmSwap" => st.vm_swap = kb(value)?,
            _ => {}
        }
    }
    (have_name && have_ppid && have_uid).then_some(st)
}

/// `   1234 kB` → bytes.
fn kb(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    let v = v.strip_suffix(b" kB").unwrap_or(v).trim_ascii();
    dec(v)?.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_fixture() {
        let st = parse(include_bytes!("../../../tests/fixtures/status_lab.txt")).unwrap();
        assert_eq!(st.name, "python3");
        assert!(st.vm_rss.unwrap() > 0);
        assert_eq!(st.vm_rss.unwrap(), st.rss_anon + st.rss_file + st.rss_shmem);
        // The capture wrote one page of its anonymous shared mapping and touched nothing else.
        assert_eq!(st.rss_shmem, 4096);
    }

    #[test]
    fn kernel_thread_has_no_rss() {
        let st =
            parse(b"Name:\tkworker/0:1\nState:\tI (idle)\nPPid:\t2\nUid:\t0\t0\t0\t0\n").unwrap();
        assert_eq!(st.vm_rss, None);
    }

    #[test]
    fn hostile_name_and_truncation() {
        let st = parse(b"Name:\tbad\xff name: x\nPPid:\t1\nUid:\t1000\t1000\t1000\t1000\nVmRSS:\t  8 kB\nRssShmem:\t 4 kB\n").unwrap();
        assert_eq!(st.name, "bad\u{fffd} name: x");
        assert_eq!(st.uid, 1000);
        assert_eq!(st.rss_shmem, 4096);
        assert_eq!(parse(b"Name:\tx\nPPid:\t1\nUi"), None);
        assert_eq!(parse(b"Name:\tx\nPPid:\t1\nUid:\tnope\n"), None);
    }
}

//! Anonymous shared mappings the tests own, never inherited by a fork they did not mean.

#[allow(unused_imports)]
use super::*;

/// `mmap(MAP_SHARED|MAP_ANONYMOUS)`, never touched by the test process; munmap on drop.
pub struct SharedRegion {
    pub(super) addr: usize,
    pub(super) len: usize,
}

// SAFETY: the region is only an address range here; tests never dereference it in the parent.
unsafe impl Send for SharedRegion {}
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    pub fn new(pages: u64) -> SharedRegion {
        let len = (pages * page()) as usize;
        let _g = lock();
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the mapping made above.
        check(
            unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) },
            "madvise",
        );
        SharedRegion {
            addr: p as usize,
            len,
        }
    }

    pub fn addr(&self) -> usize {
        self.addr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// (dev string, inode) from this process's `/proc/self/maps` line for the region.
    pub fn identity(&self) -> (String, u64) {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("read maps");
        let prefix = format!("{:x}-{:x} ", self.addr, self.addr + self.len);
        let line = maps
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("region {prefix} not in /proc/self/maps"));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&f[1][3..4], "s", "not a shared mapping: {line}");
        let (maj, min) = f[3].split_once(':').unwrap();
        let dev = format!(
            "{}:{}",
            u32::from_str_radix(maj, 16).unwrap(),
            u32::from_str_radix(min, 16).unwrap()
        );
        (dev, f[4].parse().unwrap())
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping this value owns.
        unsafe {
            libc::munmap(self.addr as *mut libc::c_void, self.len);
        }
    }
}

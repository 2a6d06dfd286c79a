//! One parser per `/proc` (or `/etc`) file: pure functions over bytes, no I/O, each tested on
//! captured fixtures here and fuzzed in `tests/proptest_parsers/`.

pub mod cgroup;
pub mod cmdline;
pub mod hugepages;
pub mod loadavg;
pub mod maps;
pub mod meminfo;
pub mod mountinfo;
pub mod passwd;
pub mod smaps;
pub mod stat;
pub mod status;
pub mod system_stat;
pub mod sysv;
pub mod zoneinfo;

//! `/etc/passwd`: uid → user name.
//!
//! Read directly rather than through NSS (`getpwuid_r`), which may load modules and talk to
//! LDAP for every unknown uid.

use std::collections::HashMap;

/// Names by uid; the first entry for a uid wins, as in getpwuid. Malformed lines are skipped.
pub fn parse(text: &[u8]) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in String::from_utf8_lossy(text).lines() {
        let mut f = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if let Ok(uid) = uid.parse::<u32>() {
            names.entry(uid).or_insert_with(|| name.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd() {
        let m = parse(
            b"root:x:0:0:root:/root:/bin/bash\nbroken\nwww-data:x:33:33::/:/x\ntoor:x:0:0::/:/x\n",
        );
        assert_eq!(m[&0], "root");
        assert_eq!(m[&33], "www-data");
        assert_eq!(m.len(), 2);
    }
}

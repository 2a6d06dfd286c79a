//! uid → user name from `/etc/passwd`, cached for one scan.
//!
//! Read directly rather than through NSS (`getpwuid_r`), which may load modules and talk to
//! LDAP for every unknown uid; a uid without an entry prints as its number, as `ps` does.

use std::collections::HashMap;

#[derive(Default)]
pub struct Users {
    names: HashMap<u32, String>,
}

impl Users {
    pub fn load() -> Users {
        let text = std::fs::read("/etc/passwd").unwrap_or_default();
        Users {
            names: parse_passwd(&String::from_utf8_lossy(&text)),
        }
    }

    pub fn name(&mut self, uid: u32) -> String {
        self.names
            .entry(uid)
            .or_insert_with(|| uid.to_string())
            .clone()
    }
}

fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let mut f = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if let Ok(uid) = uid.parse::<u32>() {
            // The first entry for a uid wins, as in getpwuid.
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
        let m = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbroken\nwww-data:x:33:33::/:/x\ntoor:x:0:0::/:/x\n",
        );
        assert_eq!(m[&0], "root");
        assert_eq!(m[&33], "www-data");
        assert_eq!(m.len(), 2);
    }
}

//! uid → user name, cached for one scan; a uid without an entry prints as its number, as `ps`
//! does.

use super::parse::passwd;
use std::collections::HashMap;
use std::path::Path;

/// User names by uid.
#[derive(Default)]
pub struct Users {
    names: HashMap<u32, String>,
}

impl Users {
    /// Reads the passwd file at `path`; an unreadable file leaves every uid a number.
    pub fn load(path: &Path) -> Users {
        let text = std::fs::read(path).unwrap_or_default();
        Users {
            names: passwd::parse(&text),
        }
    }

    /// The name of `uid`, or the number itself.
    pub fn name(&mut self, uid: u32) -> String {
        self.names
            .entry(uid)
            .or_insert_with(|| uid.to_string())
            .clone()
    }
}

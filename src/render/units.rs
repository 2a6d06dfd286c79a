//! Bytes for people, and text made safe for a terminal.

use bytesize::ByteSize;

/// `1.5 GiB`, or the exact count with `exact`.
pub fn bytes(b: u64, exact: bool) -> String {
    if exact {
        b.to_string()
    } else {
        ByteSize::b(b).display().iec().to_string()
    }
}

/// Signed variant for differences.
pub fn signed_bytes(b: i64, exact: bool) -> String {
    let s = bytes(b.unsigned_abs(), exact);
    if b < 0 {
        format!("-{s}")
    } else {
        s
    }
}

/// Escapes control characters (newlines, tabs, terminal escape sequences) so a hostile name
/// cannot break a table or drive the terminal.
pub fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_and_exact() {
        assert_eq!(bytes(512 << 20, false), "512.0 MiB");
        assert_eq!(bytes(512 << 20, true), "536870912");
        assert_eq!(signed_bytes(-4096, false), "-4.0 KiB");
    }

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(escape("a\nb\tc\x1b[31m"), "a\\nb\\tc\\x1b[31m");
        assert_eq!(escape("plain name"), "plain name");
    }
}

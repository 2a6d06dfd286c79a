//! Bytes for people, and text made safe for a terminal.

use bytesize::ByteSize;

/// How the text views print byte counts: the one switch behind `--bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Units {
    /// `1.5 GiB`: IEC units, one decimal.
    #[default]
    Iec,
    /// `1610612736`: exact byte counts (`--bytes`).
    Bytes,
}

impl Units {
    /// [`Units::Bytes`] when `raw`, as `--bytes` asks.
    pub fn raw_if(raw: bool) -> Units {
        if raw {
            Units::Bytes
        } else {
            Units::Iec
        }
    }

    /// A byte count in these units.
    pub fn bytes(self, b: u64) -> String {
        match self {
            Units::Bytes => b.to_string(),
            Units::Iec => ByteSize::b(b).display().iec().to_string(),
        }
    }

    /// A change, signed both ways: `+4.0 KiB`, `-4.0 KiB`, `0 B`.
    pub fn delta(self, b: i64) -> String {
        match b.signum() {
            1 => format!("+{}", self.bytes(b.unsigned_abs())),
            _ => self.signed(b),
        }
    }

    /// A difference: `-4.0 KiB`, `4.0 KiB`.
    pub fn signed(self, b: i64) -> String {
        let s = self.bytes(b.unsigned_abs());
        if b < 0 {
            format!("-{s}")
        } else {
            s
        }
    }
}

/// Bytes for the live view and the detail pages: the tables' format (`512 B`, `4.0 KiB`,
/// `16.0 MiB`, `0 B`), one format across every view.
pub fn short(b: u64) -> String {
    Units::Iec.bytes(b)
}

/// A change in [`short`] units: `+4.0 KiB`, `-16.0 MiB`; empty when nothing changed.
pub fn short_change(d: i64) -> String {
    match d {
        0 => String::new(),
        d => Units::Iec.delta(d),
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
        assert_eq!(Units::Iec.bytes(512 << 20), "512.0 MiB");
        assert_eq!(Units::Bytes.bytes(512 << 20), "536870912");
        assert_eq!(Units::Iec.signed(-4096), "-4.0 KiB");
        assert_eq!(Units::raw_if(true), Units::Bytes);
        assert_eq!(Units::Iec.delta(4096), "+4.0 KiB");
        assert_eq!(Units::Bytes.delta(-4096), "-4096");
        assert_eq!(Units::Iec.delta(0), "0 B");
    }

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(escape("a\nb\tc\x1b[31m"), "a\\nb\\tc\\x1b[31m");
        assert_eq!(escape("plain name"), "plain name");
    }
}

//! Fitting a table to the terminal, as ps does: numbers are never cut; text columns are elided
//! with `…` first, then the least important columns are left out (and named in one line), and
//! on a pipe without `COLUMNS` nothing is touched.

use crate::report::{Align, Column};

/// Two spaces between columns, as [`super::table::plain_table`] pads them.
const GAP: usize = 2;
/// An elided text column keeps at least this many characters (or its header's).
const MIN_TEXT: usize = 8;

/// The width a table must fit: `COLUMNS` when set, else the terminal's when stdout is one, else
/// none (a pipe gets full rows).
pub fn terminal_width() -> Option<usize> {
    if let Some(w) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&w| w > 0)
    {
        return Some(w);
    }
    let out = std::io::stdout();
    if !rustix::termios::isatty(&out) {
        return None;
    }
    rustix::termios::tcgetwinsize(&out)
        .ok()
        .map(|ws| usize::from(ws.ws_col))
        .filter(|&w| w > 0)
}

/// Display width of a cell (its characters: cells are escaped, so no control characters).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// `s` cut to `w` characters, the last one `…`.
pub fn elide(s: &str, w: usize) -> String {
    if width(s) <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('…');
    out
}

/// `text` with each line longer than `max` broken between words, as a terminal would not (it
/// cuts `65.5 MiB` in two); a continuation keeps the line's indent. A pipe (`None`) gets it as
/// is. A single word longer than `max` stays whole, and so does a line indented by four
/// spaces: a command to copy.
pub fn wrap(text: &str, max: Option<usize>) -> String {
    let Some(max) = max else {
        return text.to_string();
    };
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        if width(body) <= max || body.starts_with("    ") {
            out.push_str(line);
            continue;
        }
        let indent = &body[..body.len() - body.trim_start().len()];
        // A figure and its unit stay on one line: "65.5" ending a line and "MiB" starting the
        // next reads as two things.
        let mut words: Vec<String> = Vec::new();
        for word in body.trim_start().split(' ') {
            let unit = matches!(
                word.trim_end_matches([',', ';', '.', ')']),
                "B" | "KiB" | "MiB" | "GiB" | "TiB" | "PiB" | "EiB"
            );
            match words.last_mut() {
                Some(prev) if unit && prev.ends_with(|c: char| c.is_ascii_digit()) => {
                    prev.push(' ');
                    prev.push_str(word);
                }
                _ => words.push(word.to_string()),
            }
        }
        let mut used = 0;
        for word in &words {
            if used > 0 && used + 1 + width(word) > max {
                out.push('\n');
                used = 0;
            }
            if used == 0 {
                out.push_str(indent);
                used = width(indent);
            } else {
                out.push(' ');
                used += 1;
            }
            out.push_str(word);
            used += width(word);
        }
        out.push_str(newline);
    }
    out
}

/// A table's columns and rows after fitting, and the headers of the columns left out.
pub struct Fitted<C> {
    /// The columns kept, in order.
    pub columns: Vec<C>,
    /// The rows, one text per kept column.
    pub rows: Vec<Vec<String>>,
    /// Headers of the columns left out to fit.
    pub dropped: Vec<&'static str>,
}

impl<C: Column> Fitted<C> {
    /// The line that says which columns were left out (empty when none were) and that `shows`
    /// (`-o`, naming them; or `--json`) brings them back, itself kept within `max`: a shorter
    /// form, then the names over several lines.
    pub fn dropped_line(&self, max: Option<usize>, shows: &str) -> String {
        if self.dropped.is_empty() {
            return String::new();
        }
        let names: Vec<String> = self.dropped.iter().map(|h| h.to_lowercase()).collect();
        let them = if self.dropped.len() == 1 {
            "it"
        } else {
            "them"
        };
        let long = if shows == "-o" {
            format!(
                "(left out to fit the width: {}; -o {} shows {them})",
                self.dropped.join(", "),
                names.join(",")
            )
        } else {
            format!(
                "(left out to fit the width: {}; {shows} shows {them})",
                self.dropped.join(", ")
            )
        };
        match max {
            Some(m) if width(&long) > m => {
                let short = format!(
                    "(left out to fit; {shows} shows {them}: {})",
                    names.join(", ")
                );
                wrap(&(short + "\n"), Some(m))
            }
            _ => long + "\n",
        }
    }

    /// Whether column `i` is right-aligned.
    pub fn right(&self, i: usize) -> bool {
        self.columns[i].align() == Align::Right
    }
}

/// Fits `rows` (one text per column of `columns`) to `max` characters. Columns in `pinned`
/// (asked for with `-o`) are never left out; figures are never cut.
pub fn fit<C: Column>(
    columns: &[C],
    rows: Vec<Vec<String>>,
    max: Option<usize>,
    pinned: bool,
) -> Fitted<C> {
    let Some(max) = max else {
        return Fitted {
            columns: columns.to_vec(),
            rows,
            dropped: Vec::new(),
        };
    };
    let natural: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| width(&r[i]))
                .chain([width(c.header())])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let floor = |i: usize| -> usize {
        let c = columns[i];
        if c.elidable() {
            natural[i].min(MIN_TEXT.max(width(c.header())))
        } else {
            natural[i]
        }
    };
    let total = |keep: &[usize], w: &dyn Fn(usize) -> usize| -> usize {
        keep.iter().map(|&i| w(i)).sum::<usize>() + GAP * keep.len().saturating_sub(1)
    };
    let mut keep: Vec<usize> = (0..columns.len()).collect();
    // Leave out the least important columns while even elided text does not fit.
    while total(&keep, &floor) > max && !pinned {
        let victim = keep
            .iter()
            .copied()
            .filter(|&i| columns[i].priority() < crate::report::KEEP)
            .min_by_key(|&i| (columns[i].priority(), std::cmp::Reverse(i)));
        match victim {
            Some(v) => keep.retain(|&i| i != v),
            None => break,
        }
    }
    // Then give the text columns what is left, widest first cut first.
    let mut widths: Vec<usize> = natural.clone();
    while total(&keep, &|i| widths[i]) > max {
        let widest = keep
            .iter()
            .copied()
            .filter(|&i| columns[i].elidable() && widths[i] > floor(i))
            .max_by_key(|&i| (widths[i], std::cmp::Reverse(i)));
        match widest {
            Some(i) => widths[i] -= 1,
            None => break,
        }
    }
    let dropped = (0..columns.len())
        .filter(|i| !keep.contains(i))
        .map(|i| columns[i].header())
        .collect();
    let rows = rows
        .into_iter()
        .map(|r| {
            keep.iter()
                .map(|&i| {
                    if columns[i].elidable() {
                        elide(&r[i], widths[i])
                    } else {
                        r[i].clone()
                    }
                })
                .collect()
        })
        .collect();
    Fitted {
        columns: keep.iter().map(|&i| columns[i]).collect(),
        rows,
        dropped,
    }
}

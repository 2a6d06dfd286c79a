//! The object's pages scaled to a line: one strip per set of pages, each column a slice of the
//! object's offsets, shaded by how much of the slice the set covers.

use crate::collect::pagemap::PageRanges;

/// Column glyphs: none, some, a third or more, two thirds or more, all.
pub const GLYPHS: [char; 5] = ['·', '░', '▒', '▓', '█'];

/// Pages of `ranges` falling in each of `cols` equal slices of `0..pages` (slice `c` is
/// `c*pages/cols .. (c+1)*pages/cols`).
pub fn coverage(ranges: &PageRanges, pages: u64, cols: usize) -> Vec<u64> {
    let mut out = vec![0u64; cols];
    if pages == 0 || cols == 0 {
        return out;
    }
    let n = cols as u64;
    let col_of = |page: u64| ((u128::from(page) * u128::from(n)) / u128::from(pages)) as u64;
    let col_start = |c: u64| ((u128::from(c) * u128::from(pages)) / u128::from(n)) as u64;
    for &(first, count) in ranges.runs() {
        let end = (first + count).min(pages);
        let mut at = first;
        while at < end {
            let c = col_of(at);
            let c_end = col_start(c + 1).min(end).max(at + 1);
            out[c as usize] += c_end - at;
            at = c_end;
        }
    }
    out
}

/// Pages in each slice (the denominators of [`coverage`]).
pub fn slice_pages(pages: u64, cols: usize) -> Vec<u64> {
    let n = cols as u64;
    let col_start = |c: u64| ((u128::from(c) * u128::from(pages)) / u128::from(n.max(1))) as u64;
    (0..n).map(|c| col_start(c + 1) - col_start(c)).collect()
}

/// One strip of glyphs.
pub fn strip(ranges: &PageRanges, pages: u64, cols: usize) -> String {
    let cov = coverage(ranges, pages, cols);
    let den = slice_pages(pages, cols);
    cov.iter().zip(&den).map(|(&c, &d)| glyph(c, d)).collect()
}

fn glyph(covered: u64, of: u64) -> char {
    if covered == 0 || of == 0 {
        GLYPHS[0]
    } else if covered >= of {
        GLYPHS[4]
    } else if covered * 3 >= of * 2 {
        GLYPHS[3]
    } else if covered * 3 >= of {
        GLYPHS[2]
    } else {
        GLYPHS[1]
    }
}

/// Columns for an object of `pages` pages in `avail` columns: never more than one per page,
/// and where possible a count that divides the pages evenly and puts the quarters on column
/// boundaries (64 columns for 65536 pages rather than 73), so each column is the same size.
pub fn columns(pages: u64, avail: usize) -> usize {
    let avail = avail.max(1);
    if pages <= avail as u64 {
        return pages.max(1) as usize;
    }
    let even = |c: usize, quarters: bool| {
        pages.is_multiple_of(c as u64) && (!quarters || c.is_multiple_of(4))
    };
    let floor = avail / 2;
    (floor.max(1)..=avail)
        .rev()
        .find(|&c| even(c, true))
        .or_else(|| (floor.max(1)..=avail).rev().find(|&c| even(c, false)))
        .unwrap_or(avail)
}

/// A ruler `├───┼───┼───┼───┤` over `cols` columns with ticks at the quarters, and a label line
/// above it with the offsets (`label(quarter)` for quarters 0..=4) where they fit, the last one
/// over the ruler's end.
pub fn ruler(cols: usize, label: &dyn Fn(u64) -> String) -> (String, String) {
    let mut line: Vec<char> = vec!['─'; cols];
    let tick = |q: usize| (q * cols / 4).min(cols.saturating_sub(1));
    if cols >= 8 {
        for q in 1..4 {
            line[tick(q)] = '┼';
        }
    }
    if let Some(first) = line.first_mut() {
        *first = '├';
    }
    if cols > 1 {
        line[cols - 1] = '┤';
    }
    // The end label starts at the last column and may run into the margin after the strip.
    let width = cols + 12;
    let mut labels: Vec<char> = vec![' '; width];
    let mut taken: Vec<(usize, usize)> = Vec::new();
    // The ends first, then the middle, then the other quarters, each where it fits.
    let quarters: &[u64] = if cols >= 40 {
        &[0, 4, 2, 1, 3]
    } else {
        &[0, 4]
    };
    for &q in quarters {
        let text: Vec<char> = label(q).chars().collect();
        let at = if q == 4 {
            cols.saturating_sub(1)
        } else {
            tick(q as usize)
        };
        let end = at + text.len();
        if end > width || taken.iter().any(|&(a, b)| at <= b && a <= end) {
            continue;
        }
        labels[at..end].copy_from_slice(&text);
        taken.push((at, end));
    }
    (
        labels
            .into_iter()
            .collect::<String>()
            .trim_end()
            .to_string(),
        line.into_iter().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(runs: &[(u64, u64)]) -> PageRanges {
        PageRanges::from_runs(runs.iter().copied())
    }

    #[test]
    fn the_write_up_reads_at_a_glance() {
        // 256 MiB = 65536 pages on 64 columns: child 1 the first quarter, child 2 the first half.
        let pages = 65536;
        assert_eq!(
            strip(&r(&[(0, 16384)]), pages, 64),
            "█".repeat(16) + &"·".repeat(48)
        );
        assert_eq!(
            strip(&r(&[(0, 32768)]), pages, 64),
            "█".repeat(32) + &"·".repeat(32)
        );
        assert_eq!(strip(&r(&[]), pages, 64), "·".repeat(64));
    }

    #[test]
    fn partial_columns_are_shaded() {
        // 10 pages on 5 columns (2 pages each); page 3 alone half-fills column 1.
        assert_eq!(strip(&r(&[(0, 2), (3, 1), (9, 1)]), 10, 5), "█▒··▒");
        // Every other page of 12 on 4 columns (3 pages each): 2 or 1 of 3.
        let alt = PageRanges::from_runs((0..6).map(|i| (2 * i, 1)));
        assert_eq!(strip(&alt, 12, 4), "▓▒▓▒");
        // Uneven slices still add up.
        let cov = coverage(&r(&[(0, 7)]), 7, 3);
        assert_eq!(cov.iter().sum::<u64>(), 7);
        assert_eq!(slice_pages(7, 3).iter().sum::<u64>(), 7);
        // Pages beyond the object's end (a mapping longer than the file) are ignored.
        assert_eq!(coverage(&r(&[(5, 10)]), 7, 7).iter().sum::<u64>(), 2);
    }

    #[test]
    fn never_more_columns_than_pages() {
        assert_eq!(columns(3, 60), 3);
        assert_eq!(columns(0, 60), 1);
        assert_eq!(columns(65536, 73), 64);
        assert_eq!(columns(3 * 4096, 60), 48);
        assert_eq!(columns(65536, 63), 32);
        // A prime page count: every column as wide as it can be, partly shaded.
        assert_eq!(columns(65521, 60), 60);
        assert_eq!(strip(&r(&[(1, 1)]), 3, 3), "·█·");
    }

    #[test]
    fn ruler_marks_quarters() {
        let (labels, line) = ruler(40, &|q| format!("{}", q * 64));
        assert_eq!(line.chars().count(), 40);
        assert!(line.starts_with('├') && line.ends_with('┤'));
        assert_eq!(line.chars().nth(10), Some('┼'));
        assert_eq!(line.chars().nth(20), Some('┼'));
        assert!(labels.starts_with("0 "));
        assert!(labels.ends_with("256"));
        assert_eq!(labels.find("128"), Some(20));
    }
}

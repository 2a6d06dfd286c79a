//! Inputs: arbitrary bytes, and real captures with mutations.

use super::*;

/// Bytes that steer parsers into their edge cases more often than random bytes do.
pub(crate) const TOKENS: &[&[u8]] = &[
    b"\n",
    b" ",
    b"\t",
    b":",
    b"-",
    b"(",
    b")",
    b"\\",
    b"\\012",
    b"\\040",
    b"\\777",
    b" (deleted)",
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999999",
    b"ffffffffffffffff",
    b"fffffffffffffffff",
    b"-1",
    b"0",
    b" kB",
    b"kB",
    b"\xff\xfe",
    b"\xc3\xa9",
    b"\x1b[31m",
    b"\0",
    b"/memfd:",
    b"/SYSV",
    b"/dev/zero (deleted)",
    b"/dev/shm/",
    b"00:01",
    b" - ",
    b"tmpfs",
    b"proc",
    b"/proc",
    b"hidepid=2",
    b"Name:",
    b"PPid:",
    b"Uid:",
    b"VmRSS:",
    b"Rss:",
    b"Pss:",
    b"Private_Dirty:",
    b"Swap:",
    b"btime ",
    b"key",
    b"shmid",
    b"rss",
];

#[derive(Clone, Debug)]
pub(crate) enum Mutation {
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Token(Index, Index),
    Delete(Index, usize),
    Truncate(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::Token(i, t)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

pub(crate) fn apply(text: &[u8], ms: &[Mutation]) -> Vec<u8> {
    let mut t = text.to_vec();
    for m in ms {
        let at = |i: &Index, t: &Vec<u8>| i.index(t.len() + 1);
        match m {
            Mutation::Flip(i, b) => {
                if !t.is_empty() {
                    let k = i.index(t.len());
                    t[k] = *b;
                }
            }
            Mutation::Insert(i, v) => {
                let k = at(i, &t);
                t.splice(k..k, v.iter().copied());
            }
            Mutation::Token(i, tok) => {
                let k = at(i, &t);
                let tok = TOKENS[tok.index(TOKENS.len())];
                t.splice(k..k, tok.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let k = at(i, &t);
                let end = (k + n).min(t.len());
                t.drain(k..end);
            }
            Mutation::Truncate(i) => {
                let k = at(i, &t);
                t.truncate(k);
            }
            Mutation::DuplicateLine(i) => {
                let mut lines: Vec<Vec<u8>> =
                    t.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let k = i.index(lines.len());
                let dup = lines[k].clone();
                lines.insert(k, dup);
                t = lines.join(&b'\n');
            }
            Mutation::SwapLines(a, b) => {
                let mut lines: Vec<Vec<u8>> =
                    t.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let (x, y) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(x, y);
                t = lines.join(&b'\n');
            }
        }
    }
    t
}

/// A real capture with 1 to 12 mutations.
pub(crate) fn mutated(fixture: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(mutation(), 1..12).prop_map(move |ms| apply(fixture, &ms))
}

/// Random bytes biased towards the tokens parsers split on.
pub(crate) fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<u8>().prop_map(|b| vec![b]),
            1 => any::<Index>().prop_map(|i| TOKENS[i.index(TOKENS.len())].to_vec()),
            1 => "[0-9a-f]{1,20}".prop_map(String::into_bytes),
        ],
        0..200,
    )
    .prop_map(|parts| parts.concat())
}

/// A line (no `\n`) of garbage.
pub(crate) fn garbage_line() -> impl Strategy<Value = Vec<u8>> {
    garbage().prop_map(|mut v| {
        v.retain(|&b| b != b'\n');
        v
    })
}

/// Every input family a parser gets: garbage, its own capture mutated, and every other capture
/// mutated (a parser fed the wrong file must not panic either).
pub(crate) fn any_input(own: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => garbage(),
        4 => mutated(own),
        1 => mutated(MAPS),
        1 => mutated(STATUS),
        1 => mutated(SYSV),
        1 => mutated(MOUNTINFO),
        1 => mutated(STAT),
    ]
}

//! Just enough of the kernel's BTF (`/sys/kernel/btf/vmlinux`) to load an iterator program: the
//! id of a function by name (the attach point) and the byte offset of a struct member (the
//! field loads the program makes), so one program fits every kernel build.

const MAGIC: u16 = 0xeb9f;
#[cfg(test)]
const KIND_INT: u32 = 1;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_TYPE_TAG: u32 = 18;

/// A parsed BTF blob: where each type's record starts, and names of the structs and functions.
pub struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Offset in `types` of type id `i + 1`.
    at: Vec<u32>,
    /// Ids of the structs (and unions) and functions asked for by name; the first wins.
    named: Vec<((&'a [u8], bool), u32)>,
}

/// A struct member's place: its byte offset and its type id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Bytes from the start of the outer struct.
    pub offset: u32,
    /// The member's type (qualifiers and typedefs stripped).
    pub type_id: u32,
}

/// The first 8 bytes of a name (cut at its NUL, if it has one, and zero-padded).
fn prefix(name: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = name.len().min(8);
    b[..n].copy_from_slice(&name[..n]);
    let v = u64::from_le_bytes(b);
    // The lowest byte marked here is the first NUL (higher marks may be false).
    let zero = v.wrapping_sub(0x0101_0101_0101_0101) & !v & 0x8080_8080_8080_8080;
    match zero.trailing_zeros() / 8 {
        8 => v,
        k => v & ((1u64 << (8 * k)) - 1),
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Btf<'a> {
    /// Parses `blob`, noting the ids of the structs and functions named in `wanted` (only
    /// those: a map of every name cost a quarter of a whole scan's CPU); `None` when it is not
    /// little-endian BTF or is cut short.
    pub fn parse(blob: &'a [u8], wanted: &[&'a str]) -> Option<Btf<'a>> {
        if u16::from_le_bytes(blob.get(0..2)?.try_into().ok()?) != MAGIC {
            return None;
        }
        let hdr_len = u32_at(blob, 4)? as usize;
        let (type_off, type_len) = (u32_at(blob, 8)? as usize, u32_at(blob, 12)? as usize);
        let (str_off, str_len) = (u32_at(blob, 16)? as usize, u32_at(blob, 20)? as usize);
        let types = blob.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
        let strings = blob.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
        let mut btf = Btf {
            types,
            strings,
            at: Vec::with_capacity(type_len / 16),
            named: Vec::new(),
        };
        let prefixes: Vec<u64> = wanted.iter().map(|w| prefix(w.as_bytes())).collect();
        // Bytes after the 12-byte header of each kind: fixed, and per `vlen` item. A table,
        // not a match: the kinds come in no order a branch predictor can follow (the walk of
        // 5.4 MiB of BTF took 1.8 ms with a match).
        const FIXED: [u32; 20] = [0, 4, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 4, 0, 0];
        const PER_ITEM: [u32; 20] = [
            0, 0, 0, 0, 12, 12, 8, 0, 0, 0, 0, 0, 0, 8, 0, 12, 0, 0, 0, 12,
        ];
        let mut pos = 0usize;
        while let Some(head) = types.get(pos..pos + 12) {
            let word =
                |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
            let (name_off, info) = (word(0), word(4));
            let kind = ((info >> 24) & 0x1f) as usize;
            if kind >= FIXED.len() {
                return None; // a kind this reader does not know: its size is unknown
            }
            let id = u32::try_from(btf.at.len() + 1).ok()?;
            btf.at.push(pos as u32);
            if name_off != 0 && matches!(kind as u32, KIND_STRUCT | KIND_UNION | KIND_FUNC) {
                // One 8-byte compare per wanted name turns most names away. (These reads, all
                // over 2.2 MiB of strings, are half of the 1.4 ms this takes here; finding the
                // wanted names in the strings first, to compare offsets, took longer.)
                let rest = strings.get(name_off as usize..)?;
                let head = prefix(rest);
                for (w, _) in wanted.iter().zip(&prefixes).filter(|(_, p)| **p == head) {
                    let w = w.as_bytes();
                    let key = (w, kind as u32 == KIND_FUNC);
                    if rest.get(w.len()) == Some(&0)
                        && rest.starts_with(w)
                        && !btf.named.iter().any(|(k, _)| *k == key)
                    {
                        btf.named.push((key, id));
                    }
                }
            }
            pos += 12 + (FIXED[kind] + PER_ITEM[kind] * (info & 0xffff)) as usize;
        }
        if pos != types.len() {
            return None; // cut short
        }
        Some(btf)
    }

    fn name(&self, off: u32) -> Option<&'a [u8]> {
        let rest = self.strings.get(off as usize..)?;
        Some(&rest[..rest.iter().position(|&b| b == 0)?])
    }

    fn record(&self, id: u32) -> Option<(u32, u32, usize)> {
        let pos = *self.at.get((id as usize).checked_sub(1)?)? as usize;
        let info = u32_at(self.types, pos + 4)?;
        Some(((info >> 24) & 0x1f, info, pos))
    }

    /// The id of function `name` (a `FUNC`, as an iterator's attach point is).
    pub fn func(&self, name: &str) -> Option<u32> {
        self.lookup(name, true)
    }

    /// The id of struct (or union) `name`.
    pub fn struct_id(&self, name: &str) -> Option<u32> {
        self.lookup(name, false)
    }

    /// The size in bytes of struct (or union) `name`.
    pub fn size(&self, name: &str) -> Option<u32> {
        let (_, _, pos) = self.record(self.struct_id(name)?)?;
        u32_at(self.types, pos + 8)
    }

    fn lookup(&self, name: &str, func: bool) -> Option<u32> {
        let key = (name.as_bytes(), func);
        self.named
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, id)| *id)
    }

    /// `id` with typedefs and qualifiers stripped.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let (kind, _, pos) = self.record(id)?;
            if !matches!(
                kind,
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
            ) {
                return Some(id);
            }
            id = u32_at(self.types, pos + 8)?;
        }
        None
    }

    /// Member `path` (`"f_inode"`, or `"ns.inum"` through embedded structs) of struct `name`,
    /// looking inside anonymous struct and union members as C does. `None` for a bitfield.
    pub fn member(&self, name: &str, path: &str) -> Option<Member> {
        let mut id = self.lookup(name, false)?;
        let mut offset = 0u32;
        for part in path.split('.') {
            let m = self.find_member(id, part.as_bytes(), 0)?;
            offset += m.offset;
            id = m.type_id;
        }
        Some(Member {
            offset,
            type_id: id,
        })
    }

    fn find_member(&self, id: u32, want: &[u8], depth: u32) -> Option<Member> {
        let (kind, info, pos) = self.record(self.resolve(id)?)?;
        if !matches!(kind, KIND_STRUCT | KIND_UNION) || depth > 8 {
            return None;
        }
        let bitfields = info & (1 << 31) != 0;
        for i in 0..(info & 0xffff) as usize {
            let at = pos + 12 + 12 * i;
            let (name_off, type_id, raw) = (
                u32_at(self.types, at)?,
                u32_at(self.types, at + 4)?,
                u32_at(self.types, at + 8)?,
            );
            let (bit_offset, bit_size) = if bitfields {
                (raw & 0xff_ffff, raw >> 24)
            } else {
                (raw, 0)
            };
            let found = if name_off == 0 {
                self.find_member(type_id, want, depth + 1)
            } else if self.name(name_off)? == want {
                (bit_size == 0 && bit_offset % 8 == 0).then_some(Member {
                    offset: 0,
                    type_id: self.resolve(type_id)?,
                })
            } else {
                None
            };
            if let Some(m) = found {
                return Some(Member {
                    offset: bit_offset / 8 + m.offset,
                    type_id: m.type_id,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: `int`, `struct inner { int a; int b; }`, `struct outer { int x; struct inner
    /// in; union { int u; }; }`, and `FUNC f`.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0inner\0a\0b\0outer\0x\0in\0u\0f\0";
        let s = |name: &str| {
            let needle = format!("\0{name}\0");
            (strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap()
                + 1) as u32
        };
        let mut t = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| t.extend(w.to_le_bytes()));
        push(&[s("int"), KIND_INT << 24, 4, 32]); // 1
        push(&[s("inner"), KIND_STRUCT << 24 | 2, 8]); // 2
        push(&[s("a"), 1, 0, s("b"), 1, 32]);
        push(&[0, KIND_UNION << 24 | 1, 4]); // 3
        push(&[s("u"), 1, 0]);
        push(&[s("outer"), KIND_STRUCT << 24 | 3, 16]); // 4
        push(&[s("x"), 1, 0, s("in"), 2, 32, 0, 3, 96]);
        push(&[s("f"), KIND_FUNC << 24, 0]); // 5
        let mut b = Vec::new();
        b.extend(MAGIC.to_le_bytes());
        b.extend([1, 0]);
        for w in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend(w.to_le_bytes());
        }
        b.extend(&t);
        b.extend(strings);
        b
    }

    #[test]
    fn finds_members_through_embedded_and_anonymous_structs() {
        let b = blob();
        let btf = Btf::parse(&b, &["f", "outer", "nope"]).unwrap();
        assert_eq!(btf.func("f"), Some(5));
        assert_eq!(btf.func("outer"), None);
        assert_eq!((btf.size("outer"), btf.size("f")), (Some(16), None));
        assert_eq!(btf.member("outer", "x").unwrap().offset, 0);
        assert_eq!(btf.member("outer", "in.b").unwrap().offset, 8);
        assert_eq!(btf.member("outer", "u").unwrap().offset, 12);
        assert_eq!(btf.member("outer", "in.c"), None);
        assert_eq!(btf.member("nope", "x"), None);
    }

    #[test]
    fn refuses_cut_or_foreign_blobs() {
        let b = blob();
        for n in 0..b.len() {
            // Cut anywhere, it parses to nothing or to a prefix; it never panics.
            let _ = Btf::parse(&b[..n], &["outer"]);
        }
        assert!(Btf::parse(b"\x9f\xeb", &[]).is_none());
    }

    #[test]
    fn prefixes_stop_at_the_nul() {
        assert_eq!(prefix(b"abc\0defgh"), prefix(b"abc"));
        assert_eq!(prefix(b"\0abc"), 0);
        assert_eq!(prefix(b"abcdefghij"), prefix(b"abcdefgh"));
        assert_ne!(prefix(b"abcdefgh"), prefix(b"abcdefg"));
        assert_eq!(
            prefix(b"a\x01\0"),
            u64::from_le_bytes([b'a', 1, 0, 0, 0, 0, 0, 0])
        );
    }

    #[test]
    fn reads_this_kernel() {
        let Ok(b) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            eprintln!("skipped: no /sys/kernel/btf/vmlinux");
            return;
        };
        let btf =
            Btf::parse(&b, &["bpf_iter_task_file", "task_struct"]).expect("vmlinux BTF parses");
        assert!(btf.func("bpf_iter_task_file").is_some());
        let tgid = btf.member("task_struct", "tgid").unwrap();
        let pid = btf.member("task_struct", "pid").unwrap();
        assert_eq!(
            tgid.offset,
            pid.offset + 4,
            "pid and tgid are adjacent ints"
        );
    }
}

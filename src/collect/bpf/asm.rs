//! BPF instructions, encoded by hand: the programs are a few dozen instructions, and writing
//! them here spares a C compiler at build time and a loader library at run time.

/// A register.
#[derive(Clone, Copy)]
pub struct Reg(pub u8);

/// Arguments and return value (`r0`–`r5`), callee-saved (`r6`–`r9`), frame pointer (`r10`).
pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R8: Reg = Reg(8);
pub const R9: Reg = Reg(9);
pub const FP: Reg = Reg(10);

/// Access sizes.
#[derive(Clone, Copy)]
pub enum Size {
    /// 2 bytes.
    H,
    /// 4 bytes.
    W,
    /// 8 bytes.
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::DW => 0x18,
        }
    }
}

fn insn(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst.0 & 0xf) << 8
        | u64::from(src.0 & 0xf) << 12
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

/// `dst = *(size *)(src + off)`.
pub fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> u64 {
    insn(0x61 | size.bits(), dst, src, off, 0)
}

/// `*(size *)(dst + off) = src`.
pub fn stx(size: Size, dst: Reg, off: i16, src: Reg) -> u64 {
    insn(0x63 | size.bits(), dst, src, off, 0)
}

/// `dst = src` (64 bits).
pub fn mov(dst: Reg, src: Reg) -> u64 {
    insn(0xbf, dst, src, 0, 0)
}

/// `dst = imm` (64 bits, sign-extended).
pub fn mov_imm(dst: Reg, imm: i32) -> u64 {
    insn(0xb7, dst, Reg(0), 0, imm)
}

/// `dst += imm` (64 bits).
pub fn add_imm(dst: Reg, imm: i32) -> u64 {
    insn(0x07, dst, Reg(0), 0, imm)
}

/// `dst += src` (64 bits).
pub fn add_reg(dst: Reg, src: Reg) -> u64 {
    insn(0x0f, dst, src, 0, 0)
}

/// `dst -= src` (64 bits).
pub fn sub_reg(dst: Reg, src: Reg) -> u64 {
    insn(0x1f, dst, src, 0, 0)
}

/// `dst <<= imm` (64 bits).
pub fn lsh_imm(dst: Reg, imm: i32) -> u64 {
    insn(0x67, dst, Reg(0), 0, imm)
}

/// `dst >>= imm` (64 bits, arithmetic: the sign bit is copied in).
pub fn arsh_imm(dst: Reg, imm: i32) -> u64 {
    insn(0xc7, dst, Reg(0), 0, imm)
}

/// `dst &= imm` (64 bits).
pub fn and_imm(dst: Reg, imm: i32) -> u64 {
    insn(0x57, dst, Reg(0), 0, imm)
}

/// `if dst == imm goto +off` (64 bits).
pub fn jeq_imm(dst: Reg, imm: i32, off: i16) -> u64 {
    insn(0x15, dst, Reg(0), off, imm)
}

/// `if dst != imm goto +off` (64 bits).
pub fn jne_imm(dst: Reg, imm: i32, off: i16) -> u64 {
    insn(0x55, dst, Reg(0), off, imm)
}

/// `if dst != src goto +off` (64 bits).
pub fn jne_reg(dst: Reg, src: Reg, off: i16) -> u64 {
    insn(0x5d, dst, src, off, 0)
}

/// `if (u32)dst == (u32)imm goto +off`.
pub fn jeq32_imm(dst: Reg, imm: u32, off: i16) -> u64 {
    insn(0x16, dst, Reg(0), off, imm as i32)
}

/// `goto +off`.
pub fn ja(off: i16) -> u64 {
    insn(0x05, Reg(0), Reg(0), off, 0)
}

/// `dst >>= imm` (64 bits, logical).
pub fn rsh_imm(dst: Reg, imm: i32) -> u64 {
    insn(0x77, dst, Reg(0), 0, imm)
}

/// `if dst & imm goto +off` (64 bits).
pub fn jset_imm(dst: Reg, imm: i32, off: i16) -> u64 {
    insn(0x45, dst, Reg(0), off, imm)
}

/// `dst = ` the map of descriptor `fd` (`BPF_PSEUDO_MAP_FD`, two instructions).
pub fn ld_map_fd(dst: Reg, fd: i32) -> [u64; 2] {
    [insn(0x18, dst, Reg(1), 0, fd), 0]
}

/// A call of helper `id`.
pub fn call(id: i32) -> u64 {
    insn(0x85, Reg(0), Reg(0), 0, id)
}

/// A call of kernel function (kfunc) `btf_id` of vmlinux.
pub fn call_kfunc(btf_id: u32) -> u64 {
    insn(0x85, Reg(0), Reg(2), 0, btf_id as i32)
}

/// `return r0`.
pub fn exit() -> u64 {
    insn(0x95, Reg(0), Reg(0), 0, 0)
}

/// A program under construction, with jumps to named places.
#[derive(Default)]
pub struct Prog {
    insns: Vec<u64>,
    /// Jumps to aim: instruction index and label.
    jumps: Vec<(usize, &'static str)>,
    labels: Vec<(&'static str, usize)>,
}

impl Prog {
    /// Appends instructions.
    pub fn push(&mut self, insns: &[u64]) {
        self.insns.extend_from_slice(insns);
    }

    /// Appends a jump instruction (its offset 0) to be aimed at `label`.
    pub fn jump(&mut self, insn: u64, label: &'static str) {
        self.jumps.push((self.insns.len(), label));
        self.insns.push(insn);
    }

    /// Names the place of the next instruction.
    pub fn label(&mut self, label: &'static str) {
        self.labels.push((label, self.insns.len()));
    }

    /// The instructions with every jump aimed. Panics on a jump to a label never placed (a
    /// mistake in this module, caught by its tests).
    pub fn finish(mut self) -> Vec<u64> {
        for (at, label) in self.jumps {
            let (_, to) = self
                .labels
                .iter()
                .find(|(l, _)| *l == label)
                .unwrap_or_else(|| panic!("no label {label}"));
            let off = i16::try_from(*to as i64 - at as i64 - 1).expect("a short jump");
            self.insns[at] |= u64::from(off as u16) << 16;
        }
        self.insns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_the_kernel_documents() {
        // Opcode byte, then dst in the low and src in the high nibble, then off and imm.
        assert_eq!(
            ldx(Size::DW, R6, R1, 8).to_le_bytes(),
            [0x79, 0x16, 8, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            stx(Size::W, FP, -4, R2).to_le_bytes(),
            [0x63, 0x2a, 0xfc, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(mov_imm(R0, 0).to_le_bytes(), [0xb7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            jeq_imm(R7, 0, 3).to_le_bytes(),
            [0x15, 0x07, 3, 0, 0, 0, 0, 0]
        );
        assert_eq!(call(127).to_le_bytes(), [0x85, 0, 0, 0, 127, 0, 0, 0]);
        assert_eq!(
            add_reg(R3, R2).to_le_bytes(),
            [0x0f, 0x23, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            sub_reg(R3, R2).to_le_bytes(),
            [0x1f, 0x23, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(lsh_imm(R2, 32).to_le_bytes(), [0x67, 2, 0, 0, 32, 0, 0, 0]);
        assert_eq!(arsh_imm(R2, 32).to_le_bytes(), [0xc7, 2, 0, 0, 32, 0, 0, 0]);
        assert_eq!(exit().to_le_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn jumps_are_aimed_at_their_labels() {
        let mut p = Prog::default();
        p.jump(jeq_imm(R1, 0, 0), "end");
        p.push(&[mov_imm(R0, 1)]);
        p.jump(ja(0), "end");
        p.push(&[mov_imm(R0, 2)]);
        p.label("end");
        p.push(&[exit()]);
        let insns = p.finish();
        assert_eq!((insns[0] >> 16) & 0xffff, 3);
        assert_eq!((insns[2] >> 16) & 0xffff, 1);
    }
}

//! Disassembly of generated machine code (x86-64 through `iced-x86`), for
//! inspection only: nothing here runs unless a user asks for it.

/// One decoded instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insn {
    pub address: u64,
    pub bytes: Vec<u8>,
    /// Intel syntax; `(bad)` for bytes that do not decode.
    pub text: String,
    /// What a constant address in the instruction is (see `annotate`).
    pub comment: Option<String>,
}

/// Name the runtime addresses instructions embed (dispatch-table slots,
/// counters, builtins): `name(addr)` says what is at `addr`, if anything.
pub fn annotate(insns: &mut [Insn], name: impl Fn(u64) -> Option<String>) {
    for i in insns {
        i.comment = constants(i).into_iter().find_map(&name);
    }
}

/// The 64-bit immediates and absolute displacements of an instruction.
#[cfg(target_arch = "x86_64")]
fn constants(i: &Insn) -> Vec<u64> {
    use iced_x86::{Decoder, DecoderOptions, OpKind};
    let insn = Decoder::with_ip(64, &i.bytes, i.address, DecoderOptions::NONE).decode();
    let mut out = Vec::new();
    for k in 0..insn.op_count() {
        match insn.op_kind(k) {
            OpKind::Immediate64 => out.push(insn.immediate64()),
            OpKind::Immediate32to64 => out.push(insn.immediate32to64() as u64),
            OpKind::Memory if insn.memory_base() == iced_x86::Register::None => {
                out.push(insn.memory_displacement64())
            }
            _ => {}
        }
    }
    out
}

#[cfg(not(target_arch = "x86_64"))]
fn constants(_: &Insn) -> Vec<u64> {
    Vec::new()
}

/// Decode `code`, which sits at `address`.
#[cfg(target_arch = "x86_64")]
pub fn disassemble(address: u64, code: &[u8]) -> Vec<Insn> {
    use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut fmt = IntelFormatter::new();
    let o = fmt.options_mut();
    o.set_first_operand_char_index(8);
    o.set_hex_prefix("0x");
    o.set_hex_suffix("");
    o.set_uppercase_hex(false);
    o.set_branch_leading_zeros(false);
    let mut out = Vec::new();
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        let at = decoder.position();
        decoder.decode_out(&mut insn);
        let mut text = String::new();
        if insn.is_invalid() {
            text.push_str("(bad)");
        } else {
            fmt.format(&insn, &mut text);
        }
        out.push(Insn { address: insn.ip(), bytes: code[at..at + insn.len()].to_vec(), text, comment: None });
    }
    out
}

/// Without a disassembler for the host architecture: the bytes, 8 per line.
#[cfg(not(target_arch = "x86_64"))]
pub fn disassemble(address: u64, code: &[u8]) -> Vec<Insn> {
    code.chunks(8)
        .enumerate()
        .map(|(i, c)| Insn {
            address: address + 8 * i as u64,
            bytes: c.to_vec(),
            text: ".byte".into(),
            comment: None,
        })
        .collect()
}

/// `address: bytes  mnemonic operands  ; comment` lines.
pub fn format(insns: &[Insn]) -> String {
    let width = insns.iter().map(|i| i.bytes.len()).max().unwrap_or(0).min(12) * 3;
    let mut out = String::new();
    for i in insns {
        let hex: Vec<String> = i.bytes.iter().map(|b| format!("{b:02x}")).collect();
        let line = format!("{:#014x}:  {:<width$} {}", i.address, hex.join(" "), i.text);
        match &i.comment {
            Some(c) => out.push_str(&format!("{line:<72} ; {c}\n")),
            None => out.push_str(&format!("{line}\n")),
        }
    }
    out
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_bytes() {
        // push rbp; mov rbp,rsp; roundsd xmm0,xmm0,9; ret; and one byte that does not decode alone.
        let code = [0x55, 0x48, 0x89, 0xe5, 0x66, 0x0f, 0x3a, 0x0b, 0xc0, 0x09, 0xc3, 0x0f];
        let insns = disassemble(0x1000, &code);
        let texts: Vec<&str> = insns.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(texts[..4], ["push    rbp", "mov     rbp,rsp", "roundsd xmm0,xmm0,9", "ret"]);
        assert_eq!(insns[2].address, 0x1004);
        assert_eq!(insns[2].bytes, [0x66, 0x0f, 0x3a, 0x0b, 0xc0, 0x09]);
        assert_eq!(insns[4].text, "(bad)");
        let mut insns = insns;
        annotate(&mut insns, |a| (a == 9).then(|| "nine".to_string()));
        assert_eq!(insns[2].comment, None, "roundsd's 9 is an 8-bit immediate, not an address");
        let text = format(&insns);
        assert!(text.contains("0x000000001000:  55"), "{text}");
        // mov rax, 0x1234567890 names what is there.
        let mut mov = disassemble(0, &[0x48, 0xb8, 0x90, 0x78, 0x56, 0x34, 0x12, 0, 0, 0]);
        annotate(&mut mov, |a| (a == 0x1234567890).then(|| "slot of 'f'".to_string()));
        assert!(format(&mov).trim_end().ends_with("; slot of 'f'"), "{}", format(&mov));
    }
}

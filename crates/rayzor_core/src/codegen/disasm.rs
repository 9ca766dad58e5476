//! Disassembly of generated machine code (x86-64 through `iced-x86`), for
//! inspection only: nothing here runs unless a user asks for it.

/// One decoded instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insn {
    pub address: u64,
    pub bytes: Vec<u8>,
    /// Intel syntax; `(bad)` for bytes that do not decode.
    pub text: String,
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
        out.push(Insn { address: insn.ip(), bytes: code[at..at + insn.len()].to_vec(), text });
    }
    out
}

/// Without a disassembler for the host architecture: the bytes, 8 per line.
#[cfg(not(target_arch = "x86_64"))]
pub fn disassemble(address: u64, code: &[u8]) -> Vec<Insn> {
    code.chunks(8)
        .enumerate()
        .map(|(i, c)| Insn { address: address + 8 * i as u64, bytes: c.to_vec(), text: ".byte".into() })
        .collect()
}

/// `address: bytes  mnemonic operands` lines.
pub fn format(insns: &[Insn]) -> String {
    let width = insns.iter().map(|i| i.bytes.len()).max().unwrap_or(0).min(12) * 3;
    let mut out = String::new();
    for i in insns {
        let hex: Vec<String> = i.bytes.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("{:#014x}:  {:<width$} {}\n", i.address, hex.join(" "), i.text));
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
        let text = format(&insns);
        assert!(text.contains("0x000000001000:  55"), "{text}");
    }
}

//! Where a function's code starts in its page: the offset (a multiple of 16,
//! below 64) at which its innermost loops span the fewest 64-byte lines.
//!
//! Cranelift does not align loop headers (x64's `align_basic_block` is the
//! identity; wasmtime's PR #5004 to align them to 64 bytes was closed), so
//! where a loop falls in the instruction cache lines depends on everything
//! before it in the function, and any change to a function's code moves it:
//! sieve's T1 marking loop ran 1.5x slower once a change to the prologue moved
//! its body across one more 64-byte line (docs/benchmarks.md, "Calls"). One
//! start offset per function places all its loops at once: the one at which its
//! innermost loops (the ranges between a backward branch's target and the
//! branch, with no other inside) span the fewest lines in all. A proxy with known
//! blind spots (a review measured them on `tests/mir`): a cold block Cranelift
//! moved to the end that jumps back into the body is a backward branch too, so it
//! counts as a loop (a function without loops may be moved, and a real loop may
//! lose a tie to such a range); bytes after the code (constants, jump tables) are
//! decoded as instructions. Loop headers and back-edges marked by the lowering
//! (source locations read back from Cranelift's buffer) would be exact. Cranelift's code has
//! no relocations and its constants are 16-byte aligned relative to its start
//! (checked in `cranelift::emit`), so any 16-aligned start is as correct as 0.

/// Instruction cache line size on the x86-64 machines measured.
pub const LINE: usize = 64;
/// Larger functions are not analysed (a 100,000-case switch's T0 code is megabytes;
/// its decoding would cost more of its compile than a loop's place saves).
const MAX_ANALYSED: usize = 64 << 10;

/// The offset from a page start at which `code` should be placed.
pub fn start_offset(code: &[u8]) -> usize {
    best_offset(&innermost_loops(&backward_branches(code)))
}

/// The 16-aligned offset below `LINE` at which the loops `[start, end)` span
/// the fewest lines in all (the smallest such offset: 0 when none does better).
fn best_offset(loops: &[(usize, usize)]) -> usize {
    let cost = |s: usize| loops.iter().map(|&(a, b)| lines(a + s, b + s)).sum::<usize>();
    (0..LINE).step_by(16).min_by_key(|&s| cost(s)).unwrap_or(0)
}

/// Lines spanned by the bytes `[start, end)` (`end > start`).
fn lines(start: usize, end: usize) -> usize {
    (end - 1) / LINE - start / LINE + 1
}

/// The loops no other loop lies inside: where a loop's code is laid out
/// between its header and its back-edge, the innermost ones.
fn innermost_loops(loops: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let inside = |(a, b): (usize, usize), (c, d): (usize, usize)| a <= c && d <= b && (a, b) != (c, d);
    loops.iter().copied().filter(|&l| !loops.iter().any(|&m| inside(l, m))).collect()
}

/// The byte range from each backward branch's target to the branch's end.
#[cfg(target_arch = "x86_64")]
fn backward_branches(code: &[u8]) -> Vec<(usize, usize)> {
    use iced_x86::{Code, Decoder, DecoderOptions, Instruction, OpKind};
    if code.len() > MAX_ANALYSED {
        return Vec::new();
    }
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let mut out = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        // A jump or conditional jump to a code address (a direct call has the same operand).
        if insn.op_count() != 1
            || insn.op0_kind() != OpKind::NearBranch64
            || insn.code() == Code::Call_rel32_64
        {
            continue;
        }
        let (target, end) = (insn.near_branch_target() as usize, insn.next_ip() as usize);
        if target < end {
            out.push((target, end));
        }
    }
    out
}

#[cfg(not(target_arch = "x86_64"))]
fn backward_branches(_: &[u8]) -> Vec<(usize, usize)> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_are_moved_off_line_boundaries_only_when_that_saves_lines() {
        // sieve's two innermost loops at T2: 3 + 3 lines at offset 0, 2 + 2 at 32.
        assert_eq!(lines(0x12e, 0x187), 3);
        assert_eq!(best_offset(&[(0xbb, 0x10f), (0x12e, 0x187)]), 32);
        // Already within as few lines as they can be: left where they are.
        assert_eq!(best_offset(&[(0x118, 0x176)]), 0);
        assert_eq!(best_offset(&[(0x100, 0x140)]), 0);
        assert_eq!(best_offset(&[]), 0);
    }

    #[test]
    fn only_innermost_loops_count() {
        let loops = [(0xa2, 0x161), (0xbb, 0x10f), (0x12e, 0x187)];
        assert_eq!(innermost_loops(&loops), vec![(0xbb, 0x10f), (0x12e, 0x187)]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn backward_jumps_are_found_and_calls_are_not_loops() {
        // 0: nop x 40; 40: jne -10 (to 32, the inner loop); 42: nop x 8;
        // 50: jmp -52 (to 0, the outer loop); 52: call rel32 -57 (to 0)
        let mut code = vec![0x90u8; 40];
        code.extend([0x75, (-10i8) as u8]);
        code.extend([0x90u8; 8]);
        code.extend([0xeb, (-52i8) as u8]);
        code.extend([0xe8]);
        code.extend((-57i32).to_le_bytes());
        assert_eq!(backward_branches(&code), vec![(32, 42), (0, 52)]);
        assert_eq!(innermost_loops(&backward_branches(&code)), vec![(32, 42)]);
        // Straight-line code has no loop: placed at the page start.
        assert_eq!(start_offset(&[0x90, 0xc3]), 0);
    }
}

//! The perf map: `/tmp/perf-<pid>.map`, one line `START SIZE name` (hex start
//! and size) per code blob, the format `perf report` reads to name JIT frames
//! (as V8's `--perf-basic-prof` and wasmtime's `--profile=perfmap` write it).
//!
//! Lines are appended (never rewritten), each batch with one `write` to a
//! file opened `O_APPEND` for it: concurrent writers (threads, other jits, a
//! forked child, which writes to its own pid's file) never interleave within
//! a line, and a map someone deleted is created afresh.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

/// The perf map of this process.
pub fn path() -> PathBuf {
    PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()))
}

/// The line for code at `start` of `size` bytes named `name`.
pub fn line(start: usize, size: usize, name: &str) -> String {
    // perf takes the rest of the line as the name: keep it on one line.
    let name: String = name.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    format!("{start:x} {size:x} {name}\n")
}

/// Append the lines for `entries` (start, size, name) to the perf map.
pub fn append(entries: &[(usize, usize, String)]) -> std::io::Result<()> {
    let text: String = entries.iter().map(|(s, n, name)| line(*s, *n, name)).collect();
    OpenOptions::new().create(true).append(true).open(path())?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_hex_start_size_name() {
        assert_eq!(line(0x7f00_1234_5000, 0x1a0, "fib[T3]"), "7f0012345000 1a0 fib[T3]\n");
        assert_eq!(line(16, 1, "a\nb"), "10 1 a?b\n");
    }
}

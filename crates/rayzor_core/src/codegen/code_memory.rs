//! Executable memory for compiled code: one mapping per compiled function,
//! written while read-write, then made read+execute. Freed on drop.

use std::ptr::NonNull;

pub struct CodeBlob {
    /// Start of the mapping (the code starts `offset` bytes in).
    ptr: NonNull<u8>,
    offset: usize,
    mapped: usize,
    len: usize,
}

// The mapping is immutable (read+execute) once built.
unsafe impl Send for CodeBlob {}
unsafe impl Sync for CodeBlob {}

impl CodeBlob {
    /// Copy `code` into fresh executable memory.
    pub fn new(code: &[u8]) -> Result<CodeBlob, String> {
        CodeBlob::at_offset(code, 0)
    }

    /// Copy position-independent `code` into fresh executable memory, `offset`
    /// bytes after the start of a page (`placement::start_offset`).
    pub fn at_offset(code: &[u8], offset: usize) -> Result<CodeBlob, String> {
        let page = page_size();
        let mapped = (offset + code.len()).max(1).div_ceil(page) * page;
        // SAFETY: anonymous private mapping, checked for failure.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap of {mapped} bytes for code failed"));
        }
        let ptr = NonNull::new(p as *mut u8).ok_or("mmap returned null")?;
        // SAFETY: the mapping is at least offset + code.len() bytes and writable.
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), ptr.as_ptr().add(offset), code.len());
            if libc::mprotect(p, mapped, libc::PROT_READ | libc::PROT_EXEC) != 0 {
                libc::munmap(p, mapped);
                return Err("mprotect of code memory failed".into());
            }
        }
        Ok(CodeBlob { ptr, offset, mapped, len: code.len() })
    }

    pub fn address(&self) -> usize {
        self.ptr.as_ptr() as usize + self.offset
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of address space held (whole pages).
    pub fn mapped_bytes(&self) -> usize {
        self.mapped
    }
}

impl Drop for CodeBlob {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; callers guarantee no thread still runs it.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.mapped);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf is always safe to call.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

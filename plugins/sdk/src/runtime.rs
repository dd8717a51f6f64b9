//! What [`crate::no_std_runtime!`] expands to call: the panic path of a `no_std` plugin.

use core::fmt::Write;

/// A fixed buffer to format the panic message in: a panic may come from a
/// failed allocation, so formatting must not allocate.
struct Buffer {
    bytes: [u8; 1024],
    len: usize,
}

impl Write for Buffer {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        for c in text.chars() {
            let mut encoded = [0u8; 4];
            let encoded = c.encode_utf8(&mut encoded).as_bytes();
            if self.len + encoded.len() > self.bytes.len() {
                return Err(core::fmt::Error);
            }
            self.bytes[self.len..self.len + encoded.len()].copy_from_slice(encoded);
            self.len += encoded.len();
        }
        Ok(())
    }
}

/// Log the panic, then trap; the host reports the call as failed.
pub fn panicked(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut buffer = Buffer {
        bytes: [0; 1024],
        len: 0,
    };
    // A message cut at the buffer's end is still worth logging.
    let _ = write!(buffer, "plugin panicked: {info}");
    let text = core::str::from_utf8(&buffer.bytes[..buffer.len]).unwrap_or("plugin panicked");
    crate::log::write(crate::LogLevel::Error, text);
    trap()
}

/// The canonical ABI's allocator, on the global allocator.
///
/// # Safety
///
/// `old` is null or a block of `old_len` bytes aligned to `align` that this
/// function returned before.
pub unsafe fn cabi_realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, handle_alloc_error, realloc};
    if new_len == 0 {
        // A valid, aligned, never dereferenced pointer.
        return align as *mut u8;
    }
    let Ok(layout) = Layout::from_size_align(new_len, align) else {
        trap()
    };
    let block = if old.is_null() || old_len == 0 {
        // SAFETY: the size is not zero.
        unsafe { alloc(layout) }
    } else {
        // SAFETY: the caller vouches for `old`; the old layout has the same alignment.
        unsafe {
            realloc(
                old,
                Layout::from_size_align_unchecked(old_len, align),
                new_len,
            )
        }
    };
    if block.is_null() {
        handle_alloc_error(layout)
    }
    block
}

/// `memcmp` for plugins without the C library.
///
/// # Safety
///
/// `a` and `b` must each be valid for reading `len` bytes.
#[inline(never)]
pub unsafe fn memcmp(a: *const u8, b: *const u8, len: usize) -> i32 {
    let mut index = 0;
    while index < len {
        // SAFETY: index < len, and the caller vouches for len bytes.
        let (x, y) = unsafe { (*a.add(index), *b.add(index)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        index += 1;
    }
    0
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    // Natively there is no sandbox to trap out of; only tests get here.
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcmp_orders_like_c() {
        let cmp =
            |a: &[u8], b: &[u8]| unsafe { memcmp(a.as_ptr(), b.as_ptr(), a.len().min(b.len())) };
        assert_eq!(cmp(b"abc", b"abc"), 0);
        assert!(cmp(b"abc", b"abd") < 0);
        assert!(cmp(b"\xff", b"\x01") > 0);
        assert_eq!(cmp(b"", b""), 0);
    }
}

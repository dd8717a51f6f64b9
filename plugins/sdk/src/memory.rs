//! A bump allocator for plugins: the fastest allocator there is, and safe
//! here because the host runs every call in a fresh instance and throws its
//! memory away afterwards.
//!
//! Allocation moves a pointer; freeing gives memory back only when it is the
//! most recent allocation (so short-lived buffers and a growing `Vec` reuse
//! space). A call's peak memory is therefore roughly everything it
//! allocated; the host's memory cap bounds it. `no_std_runtime!` installs it; a
//! `std` plugin can opt in with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: portfolio_plugin_sdk::memory::BumpAllocator =
//!     portfolio_plugin_sdk::memory::BumpAllocator::new();
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

/// WebAssembly page size.
const PAGE: usize = 64 * 1024;
/// Grow by at least this many pages at once: `memory.grow` calls into the host.
const MIN_GROW_PAGES: usize = 16;

/// Linear memory as the allocator sees it: pages that can only grow.
pub trait Memory {
    /// Address of offset 0 (0 in WebAssembly).
    fn base(&self) -> usize;
    /// First offset the heap may use (above the stack and static data).
    fn heap_start(&self) -> usize;
    /// Current size, in pages.
    fn pages(&self) -> usize;
    /// Grow by `pages`; the previous size in pages, or `None` when refused.
    fn grow(&self, pages: usize) -> Option<usize>;
}

/// The component's own linear memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinearMemory;

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// Defined by the linker: the end of static data, where the heap may begin.
    static __heap_base: u8;
}

#[cfg(target_arch = "wasm32")]
impl Memory for LinearMemory {
    fn base(&self) -> usize {
        0
    }

    fn heap_start(&self) -> usize {
        // Only the address of the linker symbol is taken, never its value.
        (&raw const __heap_base) as usize
    }

    fn pages(&self) -> usize {
        core::arch::wasm32::memory_size(0)
    }

    fn grow(&self, pages: usize) -> Option<usize> {
        match core::arch::wasm32::memory_grow(0, pages) {
            usize::MAX => None,
            previous => Some(previous),
        }
    }
}

/// A bump allocator over linear memory (offsets, turned into addresses by `M::base`).
pub struct BumpAllocator<M = LinearMemory> {
    memory: M,
    next: Cell<usize>,
    end: Cell<usize>,
    started: Cell<bool>,
}

// SAFETY: plugins are single-threaded (wasm32-wasip2 has no threads), so the
// cells are never touched concurrently.
unsafe impl<M: Sync> Sync for BumpAllocator<M> {}

impl BumpAllocator<LinearMemory> {
    /// An allocator over the component's memory that has taken nothing yet.
    pub const fn new() -> Self {
        Self::with_memory(LinearMemory)
    }
}

impl Default for BumpAllocator<LinearMemory> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> BumpAllocator<M> {
    /// An allocator over `memory` that has taken nothing yet.
    pub const fn with_memory(memory: M) -> Self {
        BumpAllocator {
            memory,
            next: Cell::new(0),
            end: Cell::new(0),
            started: Cell::new(false),
        }
    }
}

impl<M: Memory> BumpAllocator<M> {
    /// Offset of a free block for `layout`, growing memory as needed.
    fn take(&self, layout: Layout) -> Option<usize> {
        if !self.started.get() {
            // Whatever the initial memory holds above static data is free:
            // small calls never need `memory.grow` (and the host's mprotect).
            self.next.set(self.memory.heap_start());
            self.end.set(self.memory.pages() * PAGE);
            self.started.set(true);
        }
        loop {
            let start = self.next.get().checked_add(layout.align() - 1)? & !(layout.align() - 1);
            let end = start.checked_add(layout.size())?;
            if end <= self.end.get() {
                self.next.set(end);
                return Some(start);
            }
            self.grow(end - self.end.get())?;
        }
    }

    /// Grow memory by at least `missing` bytes.
    fn grow(&self, missing: usize) -> Option<()> {
        let exact = missing.div_ceil(PAGE);
        let generous = exact.max(MIN_GROW_PAGES);
        let (previous, pages) = match self.memory.grow(generous) {
            Some(previous) => (previous, generous),
            // Near the host's cap there may still be room for what is needed.
            None if generous > exact => (self.memory.grow(exact)?, exact),
            None => return None,
        };
        let start = previous * PAGE;
        if start != self.end.get() {
            // Memory grew behind our back; carry on in the new region.
            self.next.set(start);
        }
        self.end.set(start + pages * PAGE);
        Some(())
    }
}

// SAFETY: every block returned lies within memory this allocator grew, is
// aligned as asked, and is never handed out twice while live.
unsafe impl<M: Memory> GlobalAlloc for BumpAllocator<M> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.take(layout) {
            Some(offset) => (self.memory.base() + offset) as *mut u8,
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let offset = ptr as usize - self.memory.base();
        if offset + layout.size() == self.next.get() {
            self.next.set(offset);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let offset = ptr as usize - self.memory.base();
        let old_end = offset + layout.size();
        if old_end == self.next.get()
            && let Some(new_end) = offset.checked_add(new_size)
        {
            // The most recent block: resize it in place when memory allows.
            if new_end > self.end.get() {
                let _ = self.grow(new_end - self.end.get());
            }
            if self.next.get() == old_end && new_end <= self.end.get() {
                self.next.set(new_end);
                return ptr;
            }
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        // SAFETY: as for `alloc`; the old block stays valid until copied.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory backed by a host buffer, with a cap in pages.
    struct Fake {
        buffer: Vec<u8>,
        heap_start: usize,
        pages: Cell<usize>,
        cap: usize,
        grows: Cell<usize>,
    }

    impl Fake {
        fn new(initial: usize, cap: usize) -> Self {
            Fake {
                buffer: vec![0; (cap + 1) * PAGE],
                // Static data ends a little into the last initial page.
                heap_start: initial * PAGE - PAGE / 2,
                pages: Cell::new(initial),
                cap,
                grows: Cell::new(0),
            }
        }
    }

    impl Memory for &Fake {
        fn base(&self) -> usize {
            // Page-align the base so offsets keep their alignment as addresses.
            (self.buffer.as_ptr() as usize).next_multiple_of(PAGE)
        }

        fn heap_start(&self) -> usize {
            self.heap_start
        }

        fn pages(&self) -> usize {
            self.pages.get()
        }

        fn grow(&self, pages: usize) -> Option<usize> {
            let previous = self.pages.get();
            if previous + pages > self.cap {
                return None;
            }
            self.grows.set(self.grows.get() + 1);
            self.pages.set(previous + pages);
            Some(previous)
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn allocations_start_at_the_heap_base_and_are_aligned() {
        let fake = Fake::new(2, 64);
        let bump = BumpAllocator::with_memory(&fake);
        let base = (&fake).base();
        unsafe {
            let a = bump.alloc(layout(3, 1)) as usize;
            let b = bump.alloc(layout(8, 8)) as usize;
            assert_eq!(a, base + fake.heap_start);
            assert_eq!(b % 8, 0);
            assert!(b >= a + 3);
            assert_eq!(
                fake.grows.get(),
                0,
                "the initial memory's slack is used first"
            );
            let c = bump.alloc(layout(PAGE, 1)) as usize;
            assert_eq!(
                c,
                b + 8,
                "memory grows contiguously under a block that does not fit"
            );
        }
        assert_eq!(fake.grows.get(), 1);
        assert_eq!(fake.pages.get(), 2 + MIN_GROW_PAGES);
    }

    #[test]
    fn freeing_the_last_block_reuses_it() {
        let fake = Fake::new(1, 64);
        let bump = BumpAllocator::with_memory(&fake);
        unsafe {
            let a = bump.alloc(layout(100, 4));
            bump.dealloc(a, layout(100, 4));
            let b = bump.alloc(layout(100, 4));
            assert_eq!(a, b);
        }
    }

    #[test]
    fn the_last_block_grows_in_place_and_others_move_with_their_contents() {
        let fake = Fake::new(1, 256);
        let bump = BumpAllocator::with_memory(&fake);
        unsafe {
            let a = bump.alloc(layout(4, 1));
            a.copy_from_nonoverlapping(b"abcd".as_ptr(), 4);
            let grown = bump.realloc(a, layout(4, 1), 2 * PAGE * MIN_GROW_PAGES);
            assert_eq!(
                grown, a,
                "the last block grows in place, even across a memory.grow"
            );
            let b = bump.alloc(layout(1, 1));
            let moved = bump.realloc(
                a,
                layout(2 * PAGE * MIN_GROW_PAGES, 1),
                3 * PAGE * MIN_GROW_PAGES,
            );
            assert_ne!(moved, a);
            assert!(moved as usize > b as usize);
            assert_eq!(core::slice::from_raw_parts(moved, 4), b"abcd");
        }
    }

    #[test]
    fn the_cap_is_used_to_the_last_page_then_allocation_fails() {
        let fake = Fake::new(1, 4);
        let bump = BumpAllocator::with_memory(&fake);
        unsafe {
            // Fewer pages than MIN_GROW_PAGES remain: the exact growth is used.
            assert!(!bump.alloc(layout(3 * PAGE, 1)).is_null());
            assert!(bump.alloc(layout(PAGE, 1)).is_null());
            assert!(bump.alloc(layout(isize::MAX as usize - 8, 1)).is_null());
        }
        assert_eq!(fake.pages.get(), 4);
    }
}

//! The component's global allocator: a bump allocator that never frees.
//!
//! A step's instance lives for one attempt and its memory goes with it (the
//! host drops the store after every attempt), so freeing inside the attempt
//! only matters for memory reused later in the same attempt. `chunk` keeps
//! nearly everything it allocates until the host has copied the output out:
//! the input text, every chunk and its metadata strings. What the general
//! allocator added was bookkeeping: a `malloc` for each of the ~12 strings
//! and vectors per chunk, and a `free` for each in the post-return call
//! (about 60,000 of each for 4 MB of text, ~12% of a sandboxed attempt).
//! Here an allocation is an aligned pointer bump, the newest allocation
//! grows in place, and a free does nothing.
//!
//! Memory comes from `memory.grow`, at least [`MIN_GROWTH`] at a time; a
//! refused growth (the step's memory limit) returns null, which Rust turns
//! into a trap the host reports as a memory-limit failure. Other code
//! growing the memory (wasi-libc's own `malloc`) only means the next region
//! starts where that growth ended.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

/// Bytes in a Wasm page.
const PAGE: usize = 64 * 1024;
/// The least memory asked of the host at a time.
const MIN_GROWTH: usize = 16 * PAGE;

/// A bump allocator over regions of linear memory taken with `memory.grow`.
pub struct BumpAllocator {
    /// The first free byte of the current region.
    next: AtomicUsize,
    /// The end of the current region.
    end: AtomicUsize,
}

impl BumpAllocator {
    /// An allocator with no region yet; the first allocation grows memory.
    pub const fn new() -> Self {
        BumpAllocator { next: AtomicUsize::new(0), end: AtomicUsize::new(0) }
    }

    /// Grows linear memory by at least `bytes` and returns the new
    /// region, or `None` when the host refuses.
    fn grow(bytes: usize) -> Option<(usize, usize)> {
        let pages = bytes.max(MIN_GROWTH).div_ceil(PAGE);
        let old_pages = core::arch::wasm32::memory_grow(0, pages);
        if old_pages == usize::MAX {
            return None;
        }
        let start = old_pages.checked_mul(PAGE)?;
        Some((start, start.checked_add(pages.checked_mul(PAGE)?)?))
    }

    /// Takes `layout` from the current region, or from new memory when it
    /// does not fit; `None` when memory cannot grow.
    fn bump(&self, layout: Layout) -> Option<usize> {
        // Wasm runs one thread here: the atomics are plain loads and stores.
        let (next, end) = (self.next.load(Ordering::Relaxed), self.end.load(Ordering::Relaxed));
        let align = layout.align();
        let mut start = align_up(next, align)?;
        let mut stop = start.checked_add(layout.size())?;
        if stop > end {
            let (region, region_end) = Self::grow(layout.size().checked_add(align)?)?;
            // Carry on from `next` when the new pages follow the region.
            let from = if region == end { next } else { region };
            start = align_up(from, align)?;
            stop = start.checked_add(layout.size())?;
            self.end.store(region_end, Ordering::Relaxed);
        }
        self.next.store(stop, Ordering::Relaxed);
        Some(start)
    }

    /// Resizes the newest block, starting at `start`, in place (growing
    /// memory if needed); false when it is not the newest or cannot grow
    /// where it is.
    fn resize_newest(&self, start: usize, old_size: usize, new_size: usize) -> bool {
        let (next, end) = (self.next.load(Ordering::Relaxed), self.end.load(Ordering::Relaxed));
        let Some(stop) = start.checked_add(new_size) else { return false };
        if start.checked_add(old_size) != Some(next) {
            return false;
        }
        if stop > end {
            match Self::grow(stop - end) {
                Some((region, region_end)) if region == end => self.end.store(region_end, Ordering::Relaxed),
                Some((region, region_end)) => {
                    // Not contiguous: the next allocation starts there.
                    self.next.store(region, Ordering::Relaxed);
                    self.end.store(region_end, Ordering::Relaxed);
                    return false;
                }
                None => return false,
            }
        }
        self.next.store(stop, Ordering::Relaxed);
        true
    }
}

/// `address` rounded up to `align` (a power of two).
fn align_up(address: usize, align: usize) -> Option<usize> {
    Some(address.checked_add(align - 1)? & !(align - 1))
}

impl Default for BumpAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `alloc` returns blocks aligned as asked, inside linear memory the
// allocator took with `memory.grow` and never handed out before (the bump
// only moves forward), or null when memory cannot grow. `dealloc` keeps the
// block reserved, which is always sound. `realloc` extends in place only the
// newest block, whose following bytes no one else owns, and otherwise
// copies into a fresh block.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for BumpAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.bump(layout).map_or(core::ptr::null_mut(), |start| start as *mut u8)
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.resize_newest(ptr as usize, layout.size(), new_size) {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let Some(new_start) = self.bump(new_layout) else {
            return core::ptr::null_mut();
        };
        let new_ptr = new_start as *mut u8;
        // SAFETY: the old block is valid for `layout.size()` bytes, the new
        // one for `new_size`, and they do not overlap (the new one lies past
        // the old block's end).
        unsafe { core::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size)) };
        new_ptr
    }
}

//! A frame's declared length is not allocated before its bytes arrive: a peer (or anything
//! that connects) declaring a 60 MiB frame and sending a few bytes must not cost 60 MiB.
//! Its own test binary: the global allocator here counts the largest single allocation (the
//! only unsafe code of this crate: a `GlobalAlloc` cannot be written without it).

#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};
use std::alloc::System;

use walden_raft_demo::proto::{Call, FrameError, read_frame};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[tokio::test]
async fn a_declared_length_is_not_allocated_before_the_bytes_arrive() {
    let declared: u32 = 60 << 20;
    let mut stream = declared.to_le_bytes().to_vec();
    stream.extend_from_slice(&[0u8; 100]);
    LARGEST.store(0, Ordering::Relaxed);
    let got = read_frame::<Call>(&mut stream.as_slice()).await;
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        matches!(got, Err(FrameError::Io(ref e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{got:?}"
    );
    assert!(
        largest < 1 << 20,
        "reading a frame that declared {declared} bytes and sent 100 allocated {largest} bytes"
    );
}

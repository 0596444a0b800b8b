//! The segment table: a fixed array (no allocator) or a growable vector.

use core::ops::{Deref, DerefMut};

/// How a log keeps its per-segment lists: [`Fixed<N>`] or `Growable`.
///
/// A [`Wal`](crate::Wal) knows one [`SegmentInfo`](crate::SegmentInfo) per live segment, and
/// recovery and [`inspect`](crate::inspect()) list the segment ids they find before
/// classifying them. Both lists follow the table the log is built with:
///
/// * [`Fixed<N>`]: at most `N` segments, inside the log itself (a `heapless::Vec`). No
///   allocator; an append that would need segment `N + 1` fails with
///   [`AppendError::SegmentTableFull`](crate::AppendError::SegmentTableFull), and an open
///   that finds more than `N` segments with
///   [`OpenError::TooManySegments`](crate::OpenError::TooManySegments). The default, and the
///   choice on a microcontroller: `Wal<MyStorage, Fixed<8>>`.
/// * `Growable` (feature `alloc`): an `alloc::vec::Vec`, so the number of segments is bounded
///   only by memory. `walden-std` uses it: a log on files has no segment-count ceiling.
///
/// The two behave the same in every other respect. The table is a cache of what the segments
/// hold, never written anywhere, so a log written with one opens with the other (given room).
///
/// It is a family of lists rather than one list because the log needs two element types
/// (segment descriptors, and during recovery segment ids) under the same capacity rule.
pub trait SegmentTable {
    /// A list of one `T` per segment.
    type List<T>: SegmentList<T>;
}

/// A list with one entry per segment, oldest first: the operations the log needs, and no more.
///
/// Reading is through the slice it dereferences to. Only adding can fail, and only when the
/// list has no room: the log checks for room before it changes anything on the medium, so a
/// full table never leaves a segment the log does not know about.
pub trait SegmentList<T>: Default + Deref<Target = [T]> + DerefMut {
    /// Makes room for one more entry if it can: `false` if the list is full (a fixed list at
    /// its capacity, or a growable one whose allocation failed). After `true`, the next
    /// [`SegmentList::insert`] succeeds.
    fn reserve_one(&mut self) -> bool;

    /// Inserts `item` at `index` (at most the length), shifting later entries up; gives the
    /// item back if there is no room.
    fn insert(&mut self, index: usize, item: T) -> Result<(), T>;

    /// Removes and returns the entry at `index`, shifting later entries down.
    ///
    /// # Panics
    ///
    /// If `index` is out of bounds (the log never asks for one that is not).
    fn remove(&mut self, index: usize) -> T;

    /// Removes and returns the last entry, if any.
    fn pop(&mut self) -> Option<T>;

    /// Appends `item`; gives it back if there is no room.
    fn push(&mut self, item: T) -> Result<(), T> {
        self.insert(self.len(), item)
    }
}

/// A table of at most `N` segments, kept inside the log: no allocator needed.
///
/// `N` bounds the retained log at `N × segment_size` bytes. Each entry costs 40 bytes in the
/// log, and recovery lists ids (8 bytes each) on the stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fixed<const N: usize>;

impl<const N: usize> SegmentTable for Fixed<N> {
    type List<T> = heapless::Vec<T, N>;
}

impl<T, const N: usize> SegmentList<T> for heapless::Vec<T, N> {
    fn reserve_one(&mut self) -> bool {
        !self.is_full()
    }

    // `insert` and `remove` move the items by swaps, not heapless's `ptr::copy`: a list holds a
    // few dozen items at most, and the copy links `memmove` (1.5 KB of flash on a Cortex-M).
    fn insert(&mut self, index: usize, item: T) -> Result<(), T> {
        if index > self.len() {
            panic!("insertion index out of bounds");
        }
        heapless::Vec::push(self, item)?;
        for i in (index + 1..self.len()).rev() {
            self.swap(i - 1, i);
        }
        Ok(())
    }

    fn remove(&mut self, index: usize) -> T {
        let _ = &self[index]; // panics past the end, like `heapless::Vec::remove`
        for i in index + 1..self.len() {
            self.swap(i - 1, i);
        }
        match heapless::Vec::pop(self) {
            Some(item) => item,
            None => unreachable!(),
        }
    }

    fn pop(&mut self) -> Option<T> {
        heapless::Vec::pop(self)
    }

    // Not through `insert`: its bounds check and panic message cost flash.
    fn push(&mut self, item: T) -> Result<(), T> {
        heapless::Vec::push(self, item)
    }
}

/// A table that grows as the log does: the number of segments is bounded only by memory.
///
/// Needs an allocator (feature `alloc`). An allocation failure is reported as a full table
/// (with the number of segments it held), not an abort.
#[cfg(any(feature = "alloc", test))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Growable;

#[cfg(any(feature = "alloc", test))]
impl SegmentTable for Growable {
    type List<T> = alloc::vec::Vec<T>;
}

#[cfg(any(feature = "alloc", test))]
impl<T> SegmentList<T> for alloc::vec::Vec<T> {
    fn reserve_one(&mut self) -> bool {
        self.try_reserve(1).is_ok()
    }

    fn insert(&mut self, index: usize, item: T) -> Result<(), T> {
        if !self.reserve_one() {
            return Err(item);
        }
        alloc::vec::Vec::insert(self, index, item);
        Ok(())
    }

    fn remove(&mut self, index: usize) -> T {
        alloc::vec::Vec::remove(self, index)
    }

    fn pop(&mut self) -> Option<T> {
        alloc::vec::Vec::pop(self)
    }

    fn push(&mut self, item: T) -> Result<(), T> {
        if !self.reserve_one() {
            return Err(item);
        }
        alloc::vec::Vec::push(self, item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise<L: SegmentList<u32>>(list: &mut L) -> usize {
        let mut n = 0;
        while n < 100 && list.reserve_one() {
            let at = list.len() / 2;
            list.insert(at, n as u32).expect("reserved");
            n += 1;
        }
        n
    }

    #[test]
    fn fixed_fills_up_and_says_so() {
        let mut list = <Fixed<3> as SegmentTable>::List::<u32>::default();
        assert_eq!(exercise(&mut list), 3);
        assert_eq!(&*list, &[1, 2, 0]);
        assert!(!list.reserve_one());
        assert_eq!(SegmentList::push(&mut list, 9), Err(9));
        assert_eq!(SegmentList::insert(&mut list, 0, 9), Err(9));
        assert_eq!(SegmentList::remove(&mut list, 0), 1);
        assert_eq!(SegmentList::pop(&mut list), Some(0));
        assert_eq!(&*list, &[2]);
        assert_eq!(SegmentList::push(&mut list, 7), Ok(()));
        assert_eq!(&*list, &[2, 7]);
    }

    #[test]
    fn growable_keeps_growing() {
        let mut list = <Growable as SegmentTable>::List::<u32>::default();
        assert_eq!(exercise(&mut list), 100);
        assert_eq!(list.len(), 100);
        assert_eq!(SegmentList::push(&mut list, 500), Ok(()));
        assert_eq!(list.last(), Some(&500));
        assert_eq!(SegmentList::remove(&mut list, 0), 1);
        assert_eq!(SegmentList::pop(&mut list), Some(500));
        assert_eq!(list.len(), 99);
    }
}

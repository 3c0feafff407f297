//! A growable array of small fixed-size values that keeps only its most recently used pages in
//! memory and the others in an anonymous temporary file.
//!
//! The main job judges its invariants over every order at the end of the run, so the tallies it
//! is judged on ([`ByOrder`](super::by_order::ByOrder): a few bytes an order) are kept for the
//! whole run. In memory they grew with the orders (~60 bytes an order, 5.8 MB at 100,000 orders
//! under heaptrack, `docs/scaling.md`); here at most [`RESIDENT_PAGES`] pages of 64 KiB each stay
//! in memory, whatever the run's length. A run's events arrive in the order its orders were
//! placed, give or take the webhook's delays, so the pages written to lately are those used next;
//! the end-of-run audit reads the array once, in order, a page at a time.
//!
//! Written by hand because no kept crate does this and nothing more: an embedded database
//! (the run's SQLite `shop.db`) would cost a statement per tally, made under the sandboxes'
//! locks as they accept each message, and `mmap` would need `unsafe`. Each page has its slot in
//! the file at `page × 64 KiB`, written when the page is pushed out and read back when it is
//! changed again (a page only read is read from the file and not brought back).
//!
//! A write that fails keeps every page in memory from then on (the run grows as it did before
//! this file existed, and one warning says so); a page that cannot be read back panics, since the
//! tallies it held are lost and no verdict over them could be trusted.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, PoisonError};

/// Bytes in a page (its values are as many whole values as fit).
const PAGE_BYTES: usize = 64 * 1024;

/// Pages kept in memory (1 MiB a store).
pub const RESIDENT_PAGES: usize = 16;

/// A `Copy` value written as exactly [`Fixed::SIZE`] bytes.
pub trait Fixed: Copy + Default + PartialEq {
    /// Its size in the file.
    const SIZE: usize;
    /// Writes it to `out` (`SIZE` bytes).
    fn put(&self, out: &mut [u8]);
    /// Reads it back from `bytes` (`SIZE` bytes, as [`Fixed::put`] wrote them).
    fn take(bytes: &[u8]) -> Self;
}

macro_rules! fixed_int {
    ($($t:ty),*) => {$(
        impl Fixed for $t {
            const SIZE: usize = size_of::<$t>();
            fn put(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn take(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("SIZE bytes"))
            }
        }
    )*};
}
fixed_int!(u8, u16, u32, u64);

impl Fixed for bool {
    const SIZE: usize = 1;
    fn put(&self, out: &mut [u8]) {
        out[0] = u8::from(*self);
    }
    fn take(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

impl<A: Fixed, B: Fixed> Fixed for (A, B) {
    const SIZE: usize = A::SIZE + B::SIZE;
    fn put(&self, out: &mut [u8]) {
        self.0.put(&mut out[..A::SIZE]);
        self.1.put(&mut out[A::SIZE..]);
    }
    fn take(bytes: &[u8]) -> Self {
        (A::take(&bytes[..A::SIZE]), B::take(&bytes[A::SIZE..]))
    }
}

impl<const N: usize> Fixed for [u8; N]
where
    [u8; N]: Default,
{
    const SIZE: usize = N;
    fn put(&self, out: &mut [u8]) {
        out.copy_from_slice(self);
    }
    fn take(bytes: &[u8]) -> Self {
        bytes.try_into().expect("SIZE bytes")
    }
}

enum Page<T> {
    /// In memory; `used` is when it was last used.
    Here { values: Box<[T]>, used: u64 },
    /// In the file, at its slot.
    Gone,
}

/// The array. Values past [`Paged::len`] read as `T::default()`.
pub struct Paged<T: Fixed> {
    len: usize,
    pages: Vec<Page<T>>,
    here: usize,
    resident: usize,
    tick: u64,
    file: Option<File>,
    /// A write failed: nothing is pushed out any more.
    stuck: bool,
    /// The last page read back by [`Paged::get`] without being taken into memory.
    peeked: Mutex<Option<(usize, Box<[T]>)>>,
}

impl<T: Fixed> Default for Paged<T> {
    fn default() -> Self {
        Paged::with_resident(RESIDENT_PAGES)
    }
}

impl<T: Fixed> Paged<T> {
    /// Values in a page.
    const PER_PAGE: usize = if T::SIZE == 0 || T::SIZE > PAGE_BYTES {
        1
    } else {
        PAGE_BYTES / T::SIZE
    };

    /// An empty array keeping at most `resident` pages (at least one) in memory.
    pub fn with_resident(resident: usize) -> Self {
        Paged {
            len: 0,
            pages: Vec::new(),
            here: 0,
            resident: resident.max(1),
            tick: 0,
            file: None,
            stuck: false,
            peeked: Mutex::new(None),
        }
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pages in the file rather than in memory.
    pub fn pages_in_file(&self) -> usize {
        self.pages.len() - self.here
    }

    fn page_bytes() -> u64 {
        (Self::PER_PAGE * T::SIZE) as u64
    }

    /// Makes it at least `len` long (new values are `T::default()`); never shortens it.
    pub fn grow_to(&mut self, len: usize) {
        self.len = self.len.max(len);
        let pages = self.len.div_ceil(Self::PER_PAGE);
        while self.pages.len() < pages {
            self.tick += 1;
            self.pages.push(Page::Here {
                values: vec![T::default(); Self::PER_PAGE].into_boxed_slice(),
                used: self.tick,
            });
            self.here += 1;
            self.push_out(usize::MAX);
        }
    }

    /// The value at `i`, to change in place. `i` must be below [`Paged::len`].
    pub fn get_mut(&mut self, i: usize) -> &mut T {
        assert!(i < self.len, "index {i} past the length {}", self.len);
        let p = i / Self::PER_PAGE;
        self.tick += 1;
        let tick = self.tick;
        if matches!(self.pages[p], Page::Gone) {
            let values = self.read_page(p);
            self.pages[p] = Page::Here { values, used: tick };
            self.here += 1;
            self.push_out(p);
        }
        match &mut self.pages[p] {
            Page::Here { values, used } => {
                *used = tick;
                &mut values[i % Self::PER_PAGE]
            }
            Page::Gone => unreachable!("page {p} was just brought in"),
        }
    }

    /// The value at `i` (`T::default()` past the end).
    pub fn get(&self, i: usize) -> T {
        if i >= self.len {
            return T::default();
        }
        let p = i / Self::PER_PAGE;
        match &self.pages[p] {
            Page::Here { values, .. } => values[i % Self::PER_PAGE],
            Page::Gone => {
                let mut peeked = self.peeked.lock().unwrap_or_else(PoisonError::into_inner);
                match &*peeked {
                    Some((q, values)) if *q == p => values[i % Self::PER_PAGE],
                    _ => {
                        let values = self.read_page(p);
                        let v = values[i % Self::PER_PAGE];
                        *peeked = Some((p, values));
                        v
                    }
                }
            }
        }
    }

    /// Every value, in order, a page at a time.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.pages.len()).flat_map(move |p| {
            let values: Cow<'_, [T]> = match &self.pages[p] {
                Page::Here { values, .. } => Cow::Borrowed(values),
                Page::Gone => Cow::Owned(self.read_page(p).into_vec()),
            };
            let n = (self.len - p * Self::PER_PAGE).min(Self::PER_PAGE);
            (0..n).map(move |i| values[i])
        })
    }

    /// Pushes out least recently used pages (never `keep`) while more than `resident` are in
    /// memory.
    fn push_out(&mut self, keep: usize) {
        while self.here > self.resident && !self.stuck {
            let oldest = self
                .pages
                .iter()
                .enumerate()
                .filter_map(|(p, page)| match page {
                    Page::Here { used, .. } if p != keep => Some((*used, p)),
                    _ => None,
                })
                .min();
            let Some((_, p)) = oldest else { return };
            if let Err(e) = self.write_page(p) {
                tracing::warn!(
                    error = %e,
                    "the order tallies' temporary file cannot be written: they stay in memory"
                );
                self.stuck = true;
                return;
            }
            self.pages[p] = Page::Gone;
            self.here -= 1;
        }
    }

    fn write_page(&mut self, p: usize) -> std::io::Result<()> {
        let Page::Here { values, .. } = &self.pages[p] else {
            return Ok(());
        };
        let mut bytes = vec![0u8; values.len() * T::SIZE];
        for (v, out) in values.iter().zip(bytes.chunks_exact_mut(T::SIZE.max(1))) {
            v.put(out);
        }
        if self.file.is_none() {
            self.file = Some(tempfile::tempfile()?);
        }
        let file = self.file.as_ref().expect("just made");
        file.write_all_at(&bytes, p as u64 * Self::page_bytes())
    }

    fn read_page(&self, p: usize) -> Box<[T]> {
        let mut bytes = vec![0u8; Self::PER_PAGE * T::SIZE];
        let read = self
            .file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no file"))
            .and_then(|f| f.read_exact_at(&mut bytes, p as u64 * Self::page_bytes()));
        if let Err(e) = read {
            panic!(
                "the order tallies' page {p} cannot be read back from their temporary file: {e}"
            );
        }
        if T::SIZE == 0 {
            return vec![T::default(); Self::PER_PAGE].into_boxed_slice();
        }
        bytes.chunks_exact(T::SIZE).map(T::take).collect()
    }
}

impl<T: Fixed> Clone for Paged<T> {
    /// A copy with a file of its own.
    fn clone(&self) -> Self {
        let mut copy = Paged::with_resident(self.resident);
        copy.grow_to(self.len);
        for (i, v) in self.iter().enumerate() {
            if v != T::default() {
                *copy.get_mut(i) = v;
            }
        }
        copy
    }
}

impl<T: Fixed> PartialEq for Paged<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Fixed> Eq for Paged<T> {}

impl<T: Fixed> fmt::Debug for Paged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paged")
            .field("len", &self.len)
            .field("pages_in_memory", &self.here)
            .field("pages_in_file", &self.pages_in_file())
            .field("stuck_in_memory", &self.stuck)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of three bytes and a page of 21,845 of them; two pages in memory.
    type V = (u16, u8);

    fn value(i: usize) -> V {
        ((i % 65_521) as u16, (i % 251) as u8 | 1)
    }

    #[test]
    fn pages_go_to_the_file_and_come_back_unchanged() {
        let per_page = Paged::<V>::PER_PAGE;
        let n = per_page * 7 + 5;
        let mut a: Paged<V> = Paged::with_resident(2);
        a.grow_to(n);
        for i in 0..n {
            *a.get_mut(i) = value(i);
        }
        assert_eq!(a.here, 2);
        assert_eq!(a.pages_in_file(), 6);
        // Read back in place, in order, and changed where they are.
        for i in (0..n).step_by(997) {
            assert_eq!(a.get(i), value(i), "{i}");
        }
        assert!(a.iter().enumerate().all(|(i, v)| v == value(i)));
        assert_eq!(a.iter().count(), n);
        *a.get_mut(3) = (7, 7);
        *a.get_mut(n - 1) = (8, 8);
        *a.get_mut(per_page * 3) = (9, 9);
        assert_eq!(a.here, 2, "at most two pages in memory");
        assert_eq!(
            (a.get(3), a.get(n - 1), a.get(per_page * 3)),
            ((7, 7), (8, 8), (9, 9))
        );
        assert_eq!(a.get(n), V::default(), "past the end");
        let b = a.clone();
        assert_eq!(a, b);
        *a.get_mut(4) = (1, 1);
        assert_ne!(a, b, "a copy is its own");
        assert_eq!(b.get(4), value(4));
    }

    #[test]
    fn a_page_only_read_stays_in_the_file() {
        let mut a: Paged<u32> = Paged::with_resident(1);
        a.grow_to(Paged::<u32>::PER_PAGE * 2);
        *a.get_mut(0) = 1;
        *a.get_mut(Paged::<u32>::PER_PAGE) = 2;
        assert_eq!((a.get(0), a.get(Paged::<u32>::PER_PAGE)), (1, 2));
        // Page 0 is in the file now; reading it does not bring it in.
        assert!(matches!(a.pages[0], Page::Gone));
        assert_eq!(a.get(1), 0);
        assert!(matches!(a.pages[0], Page::Gone));
    }

    #[test]
    fn a_store_that_cannot_write_keeps_everything() {
        let mut a: Paged<u64> = Paged::with_resident(1);
        a.stuck = true;
        a.grow_to(Paged::<u64>::PER_PAGE * 3);
        *a.get_mut(Paged::<u64>::PER_PAGE * 3 - 1) = 5;
        assert_eq!((a.here, a.pages_in_file()), (3, 0));
        assert_eq!(a.iter().filter(|v| *v == 5).count(), 1);
    }

    #[test]
    fn the_debug_output_says_where_the_pages_are() {
        let mut a: Paged<u8> = Paged::with_resident(1);
        a.grow_to(Paged::<u8>::PER_PAGE + 1);
        let shown = format!("{a:?}");
        assert!(
            shown.contains("pages_in_memory: 1") && shown.contains("pages_in_file: 1"),
            "{shown}"
        );
    }
}

//! Small per-order values kept by the order's number, for the tallies and the evidence the
//! invariants are judged on.
//!
//! A run's order ids are `ord_<run>_<n>` ([`Order::sample`]). A `HashMap<String, T>` keyed by
//! them costs the id's heap copy, the map's slot and the allocator's overhead, 100–300 bytes an
//! order for a `T` of a few bytes: with several tallies that was most of what the main job kept
//! per order (heaptrack, `docs/scaling.md`). [`ByOrder`] keeps `T` in a `Vec` indexed by `n`
//! — `size_of::<T>()` bytes an order — and any other id (another run's, one of another
//! shape) in a map, so nothing is lost whatever the ids are. The `Vec` is a [`Paged`] one: its
//! latest pages in memory, the rest in a temporary file, so that the tallies of a long run do
//! not grow the process with its orders.
//!
//! [`Order::sample`]: super::orders::Order::sample

use std::borrow::Cow;
use std::collections::HashMap;

use super::paged::{Fixed, Paged};

/// How far past the last dense slot a number may land and still be kept densely: a stray
/// id with a huge number must not reserve gigabytes.
const MAX_GAP: usize = 1 << 16;

/// Per-order values of type `T`; an order absent reads as `T::default()`, and values equal to
/// it are not iterated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByOrder<T: Fixed> {
    /// `ord_<run>` of the first numbered id stored: ids with this prefix are kept densely.
    prefix: Option<Box<str>>,
    /// The number of `dense[0]`: the first numbered id's (a resumed run's tallies start at the
    /// order it resumed from).
    base: usize,
    dense: Paged<T>,
    /// Every other id, and any id first stored here stays here (checked first, so that a
    /// value is never split between the two).
    other: HashMap<Box<str>, T>,
}

impl<T: Fixed> Default for ByOrder<T> {
    fn default() -> Self {
        ByOrder {
            prefix: None,
            base: 0,
            dense: Paged::default(),
            other: HashMap::new(),
        }
    }
}

/// `ord_<run>_<n>` → (`ord_<run>`, `n`), when `n` is written as [`Order::sample`] writes it
/// (at least four digits, no other leading zero), so that the id can be written back.
///
/// [`Order::sample`]: super::orders::Order::sample
fn split(id: &str) -> Option<(&str, usize)> {
    let (prefix, digits) = id.rsplit_once('_')?;
    let canonical = digits.len() >= 4
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 4 || !digits.starts_with('0'));
    if !canonical || digits.len() > 9 {
        return None;
    }
    Some((prefix, digits.parse().ok()?))
}

impl<T: Fixed> ByOrder<T> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping at most `pages` pages of its dense part in memory.
    #[cfg(test)]
    fn with_resident_pages(pages: usize) -> Self {
        ByOrder {
            dense: Paged::with_resident(pages),
            ..Self::default()
        }
    }

    /// Where `id` goes in the dense part, if it goes there: its prefix is the run's and its
    /// number is at most [`MAX_GAP`] past the end.
    fn dense_index(&self, id: &str) -> Option<usize> {
        let (prefix, n) = split(id)?;
        let i = n.checked_sub(self.base)?;
        let ours = self.prefix.as_deref().is_none_or(|p| p == prefix);
        (ours && i.saturating_sub(self.dense.len()) <= MAX_GAP).then_some(i)
    }

    /// The value of `id`, to change in place (inserted as `T::default()`).
    pub fn entry(&mut self, id: &str) -> &mut T {
        // Two lookups rather than one borrow held across the rest (borrowck).
        if !self.other.is_empty() && self.other.contains_key(id) {
            return self.other.get_mut(id).expect("just found");
        }
        if self.prefix.is_none()
            && let Some((prefix, n)) = split(id)
        {
            self.prefix = Some(prefix.into());
            self.base = n;
        }
        match self.dense_index(id) {
            Some(i) => {
                self.dense.grow_to(i + 1);
                self.dense.get_mut(i)
            }
            None => self.other.entry(id.into()).or_default(),
        }
    }

    /// The value of `id` (`T::default()` if absent).
    pub fn get(&self, id: &str) -> T {
        if !self.other.is_empty()
            && let Some(v) = self.other.get(id)
        {
            return *v;
        }
        self.dense_index(id)
            .map(|i| self.dense.get(i))
            .unwrap_or_default()
    }

    /// Every id whose value is not the default, with it; dense ids are written back as
    /// `ord_<run>_<n>` (four digits at least).
    pub fn iter(&self) -> impl Iterator<Item = (Cow<'_, str>, T)> + '_ {
        let (prefix, base) = (self.prefix.as_deref().unwrap_or_default(), self.base);
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, v)| *v != T::default())
            .map(move |(i, v)| (Cow::Owned(format!("{prefix}_{:04}", base + i)), v));
        let other = self
            .other
            .iter()
            .filter(|(_, v)| **v != T::default())
            .map(|(k, v)| (Cow::Borrowed(&**k), *v));
        dense.chain(other)
    }

    /// Every value that is not the default, without its id (no id is written back).
    pub fn values(&self) -> impl Iterator<Item = T> + '_ {
        self.dense
            .iter()
            .chain(self.other.values().copied())
            .filter(|v| *v != T::default())
    }

    /// Whether no value differs from the default.
    pub fn is_empty(&self) -> bool {
        self.values().next().is_none()
    }

    /// Sets `id`'s value back to the default.
    pub fn remove(&mut self, id: &str) {
        *self.entry(id) = T::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_ids_are_dense_others_are_kept_too() {
        let mut m: ByOrder<u8> = ByOrder::new();
        *m.entry("ord_r1_0003") += 1;
        *m.entry("ord_r1_12345") += 2;
        // Another run's id, an id of another shape, one not written as the run writes them.
        *m.entry("ord_r2_0003") += 3;
        *m.entry("o1") += 4;
        *m.entry("ord_r1_3") += 5;
        assert_eq!(m.get("ord_r1_0003"), 1);
        assert_eq!(m.get("ord_r1_12345"), 2);
        assert_eq!(m.get("ord_r2_0003"), 3);
        assert_eq!(m.get("o1"), 4);
        assert_eq!(m.get("ord_r1_3"), 5);
        assert_eq!(m.get("ord_r1_0004"), 0);
        assert_eq!(m.get("nothing"), 0);
        assert_eq!(m.other.len(), 3, "the run's ids are kept densely");
        let mut all: Vec<(String, u8)> = m.iter().map(|(k, v)| (k.into_owned(), v)).collect();
        all.sort();
        assert_eq!(
            all,
            [
                ("o1".to_owned(), 4),
                ("ord_r1_0003".to_owned(), 1),
                ("ord_r1_12345".to_owned(), 2),
                ("ord_r1_3".to_owned(), 5),
                ("ord_r2_0003".to_owned(), 3),
            ]
        );
        assert_eq!(m.values().map(u32::from).sum::<u32>(), 15);
        m.remove("ord_r1_0003");
        m.remove("o1");
        assert_eq!((m.get("ord_r1_0003"), m.get("o1")), (0, 0));
        assert_eq!(m.iter().count(), 3);
        assert!(!m.is_empty());
    }

    #[test]
    fn a_huge_number_does_not_reserve_memory() {
        let mut m: ByOrder<u64> = ByOrder::new();
        *m.entry("ord_r_0001") = 1;
        *m.entry("ord_r_999999999") = 2;
        assert!(m.dense.len() < 10, "{}", m.dense.len());
        assert_eq!(m.get("ord_r_999999999"), 2);
        // Ten digits do not parse as an index at all.
        *m.entry("ord_r_12345678901") = 3;
        assert_eq!(m.get("ord_r_12345678901"), 3);
        assert_eq!(m.iter().count(), 3);
    }

    #[test]
    fn a_value_is_never_split_and_a_resumed_run_starts_where_it_resumed() {
        let mut m: ByOrder<u32> = ByOrder::new();
        *m.entry("ord_r_70000") += 1;
        assert_eq!(
            (m.base, m.dense.len()),
            (70_000, 1),
            "dense from the first number"
        );
        // Below the first number: kept aside, then found there whatever the dense part does.
        *m.entry("ord_r_0005") += 1;
        *m.entry("ord_r_100000") += 1;
        *m.entry("ord_r_200000") += 1;
        assert_eq!(m.other.len(), 2, "{:?}", m.other.keys());
        for n in 70_001..=100_001 {
            *m.entry(&format!("ord_r_{n}")) += 1;
        }
        assert!(
            m.dense.len() > 100_000 - 70_000,
            "the dense part now covers 100000"
        );
        *m.entry("ord_r_100000") += 1;
        *m.entry("ord_r_0005") += 1;
        assert_eq!(m.get("ord_r_100000"), 3);
        assert_eq!(m.get("ord_r_0005"), 2);
        assert_eq!(m.get("ord_r_200000"), 1);
        let ids: Vec<String> = m.iter().map(|(k, _)| k.into_owned()).collect();
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(ids.len(), unique.len(), "no id twice");
        assert_eq!(
            m.values().sum::<u32>(),
            1 + 2 + 1 + (100_001 - 70_001 + 1) + 2
        );
    }

    #[test]
    fn a_long_run_keeps_its_early_orders_in_the_file_and_loses_none() {
        let mut m: ByOrder<(u32, u8)> = ByOrder::with_resident_pages(2);
        let n = 60_000u32;
        for i in 1..=n {
            *m.entry(&format!("ord_r_{i:04}")) = (i, 1);
        }
        assert!(m.dense.pages_in_file() >= 2, "{:?}", m.dense);
        assert_eq!(m.get("ord_r_0001"), (1, 1));
        assert_eq!(m.get("ord_r_30000"), (30_000, 1));
        // A late event about an early order changes it where it is.
        m.entry("ord_r_0002").1 += 1;
        m.remove("ord_r_0003");
        assert_eq!(m.get("ord_r_0002"), (2, 2));
        assert_eq!(m.iter().count(), n as usize - 1);
        let sum: u64 = m.values().map(|(i, _)| u64::from(i)).sum();
        assert_eq!(sum, u64::from(n) * u64::from(n + 1) / 2 - 3);
        let first = m.iter().next().map(|(id, v)| (id.into_owned(), v));
        assert_eq!(first, Some(("ord_r_0001".to_owned(), (1, 1))));
    }

    #[test]
    fn an_empty_store_reads_defaults() {
        let m: ByOrder<(u8, bool)> = ByOrder::default();
        assert!(m.is_empty());
        assert_eq!(m.get("ord_r_0001"), (0, false));
        assert_eq!(m.iter().count(), 0);
    }
}

//! A map of the sandbox's objects by id that keeps only the latest `retention` of them, oldest
//! forgotten first, so that a long load test against the sandbox holds a bounded number of
//! payment intents, charges, refunds and customers (Stripe itself keeps them for ever; a
//! sandbox that did so would grow with every order). Hand-written: an LRU crate would reorder
//! on reads, and Stripe's objects age by creation, not by use.

use std::collections::{HashMap, VecDeque};

/// Objects by id, the latest `retention` kept, in creation order.
#[derive(Debug)]
pub(crate) struct Retained<T> {
    by_id: HashMap<String, T>,
    /// The kept ids, oldest first.
    order: VecDeque<String>,
    retention: usize,
}

impl<T> Default for Retained<T> {
    fn default() -> Self {
        Retained::new(usize::MAX)
    }
}

impl<T> Retained<T> {
    /// Keeps at most `retention` objects (at least one: the object just created is always
    /// kept, so the request that created it can answer with it).
    pub(crate) fn new(retention: usize) -> Self {
        Retained {
            by_id: HashMap::new(),
            order: VecDeque::new(),
            retention: retention.max(1),
        }
    }

    /// Stores a new object, forgetting the oldest beyond the retention; returns the ids
    /// forgotten. Replacing an object already kept leaves its place in the order.
    pub(crate) fn insert(&mut self, id: String, value: T) -> Vec<String> {
        if let Some(kept) = self.by_id.get_mut(&id) {
            *kept = value;
            return Vec::new();
        }
        let mut forgotten = Vec::new();
        while self.order.len() >= self.retention {
            match self.order.pop_front() {
                Some(old) => {
                    self.by_id.remove(&old);
                    forgotten.push(old);
                }
                None => break,
            }
        }
        self.order.push_back(id.clone());
        self.by_id.insert(id, value);
        forgotten
    }

    pub(crate) fn get(&self, id: &str) -> Option<&T> {
        self.by_id.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.by_id.get_mut(id)
    }

    pub(crate) fn contains_key(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The kept objects, oldest first.
    pub(crate) fn in_order(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.order.iter().filter_map(|id| self.by_id.get(id))
    }
}

impl<T> std::ops::Index<&str> for Retained<T> {
    type Output = T;

    /// The object `id`; panics if it is not kept (as `HashMap`'s index). Used only right after
    /// the object was found or created under the same lock.
    fn index(&self, id: &str) -> &T {
        &self.by_id[id]
    }
}

impl<T> std::ops::Index<&String> for Retained<T> {
    type Output = T;

    fn index(&self, id: &String) -> &T {
        &self.by_id[id.as_str()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_and_forgets_the_oldest_first() {
        let mut r = Retained::new(2);
        assert!(r.insert("a".into(), 1).is_empty());
        assert!(r.insert("b".into(), 2).is_empty());
        assert_eq!(r.insert("c".into(), 3), ["a"]);
        assert!(r.get("a").is_none() && !r.contains_key("a"));
        assert_eq!((r.get("b"), r["c"]), (Some(&2), 3));
        assert_eq!(r.in_order().copied().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(r.by_id.len(), 2);
    }

    #[test]
    fn replacing_keeps_the_place_and_forgets_nothing() {
        let mut r = Retained::new(2);
        r.insert("a".into(), 1);
        r.insert("b".into(), 2);
        assert!(r.insert("a".into(), 10).is_empty());
        assert_eq!(r.in_order().copied().collect::<Vec<_>>(), [10, 2]);
        if let Some(v) = r.get_mut("b") {
            *v = 20;
        }
        assert_eq!(r.insert("c".into(), 3), ["a"]);
        assert_eq!(r.in_order().copied().collect::<Vec<_>>(), [20, 3]);
    }

    #[test]
    fn a_retention_of_zero_still_keeps_the_newest() {
        let mut r = Retained::new(0);
        r.insert("a".into(), 1);
        assert_eq!(r.insert("b".into(), 2), ["a"]);
        assert_eq!(r["b"], 2);
    }
}

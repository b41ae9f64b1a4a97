//! The driver's table of requests, in fixed pages instead of one growing vector. With 100,000
//! commands in flight a single `Vec` doubled to room for 131,072 entries (30 % unused) and
//! copied itself on every doubling; pages never move, and cost at most one page of slack.

use std::ops::{Index, IndexMut};

/// Slots per page: large enough that the page list stays short, small enough (~136 KiB with
/// the driver's entries) that an idle client keeps little.
const PAGE: usize = 1024;

pub(crate) struct Pages<T> {
    pages: Vec<Vec<Option<T>>>,
    len: usize,
}

impl<T> Default for Pages<T> {
    fn default() -> Self {
        Pages {
            pages: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Pages<T> {
    /// How many slots exist (filled or not); keys run from 0 to `len() - 1`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Adds a slot holding `value` at key `len()`.
    pub fn push(&mut self, value: T) {
        if self.len.is_multiple_of(PAGE) {
            self.pages.push(Vec::with_capacity(PAGE));
        }
        let page = self.pages.last_mut().expect("a page was just ensured");
        page.push(Some(value));
        self.len += 1;
    }

    pub fn get(&self, key: usize) -> Option<&Option<T>> {
        self.pages.get(key / PAGE)?.get(key % PAGE)
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut Option<T>> {
        self.pages.get_mut(key / PAGE)?.get_mut(key % PAGE)
    }
}

impl<T> Index<usize> for Pages<T> {
    type Output = Option<T>;
    fn index(&self, key: usize) -> &Option<T> {
        &self.pages[key / PAGE][key % PAGE]
    }
}

impl<T> IndexMut<usize> for Pages<T> {
    fn index_mut(&mut self, key: usize) -> &mut Option<T> {
        &mut self.pages[key / PAGE][key % PAGE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_address_their_own_slot_across_pages() {
        let mut p = Pages::default();
        for i in 0..(PAGE * 2 + 3) {
            p.push(i);
        }
        assert_eq!(p.len(), PAGE * 2 + 3);
        assert_eq!(p[0], Some(0));
        assert_eq!(p[PAGE - 1], Some(PAGE - 1));
        assert_eq!(p[PAGE], Some(PAGE));
        assert_eq!(p.get(PAGE * 2 + 2), Some(&Some(PAGE * 2 + 2)));
        assert_eq!(p.get(PAGE * 2 + 3), None);
        p[PAGE + 5] = None;
        assert_eq!(p.get_mut(PAGE + 5), Some(&mut None));
        assert_eq!(p[PAGE + 6], Some(PAGE + 6));
    }
}

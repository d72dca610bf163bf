//! Pages of lists. Every list can grow without bound (a plugin may offer
//! hundreds of step types, templates and their revisions accumulate, a
//! `forEach` fans out to thousands of items, a step retries), so none is
//! answered whole.

/// Largest page size of any list.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Which page of a list: `page` from 1, `page_size` in 1..=[`MAX_PAGE_SIZE`]
/// (out-of-range values are clamped, as the store does for runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Page number from 1.
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
}

impl PageRequest {
    /// The page, clamped into range.
    pub fn new(page: u32, page_size: u32) -> Self {
        Self {
            page: page.max(1),
            page_size: page_size.clamp(1, MAX_PAGE_SIZE),
        }
    }

    /// This page's slice of `all`, with the total.
    pub(crate) fn slice<T>(self, all: Vec<T>) -> Page<T> {
        let total = all.len() as u64;
        let skip = usize::try_from(u64::from(self.page - 1) * u64::from(self.page_size))
            .unwrap_or(usize::MAX);
        let items = all
            .into_iter()
            .skip(skip)
            .take(self.page_size as usize)
            .collect();
        Page { items, total }
    }
}

/// One page of a list and the size of the whole list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Items in the whole list.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::PageRequest;

    #[test]
    fn pages_slice_and_clamp() {
        let all: Vec<u32> = (1..=7).collect();
        let p = PageRequest::new(2, 3).slice(all.clone());
        assert_eq!((p.items, p.total), (vec![4, 5, 6], 7));
        let p = PageRequest::new(3, 3).slice(all.clone());
        assert_eq!(p.items, vec![7]);
        let p = PageRequest::new(9, 3).slice(all.clone());
        assert!(p.items.is_empty());
        assert_eq!(p.total, 7);
        assert_eq!(PageRequest::new(0, 0), PageRequest::new(1, 1));
        assert_eq!(PageRequest::new(1, 1000).page_size, 100);
        let p = PageRequest::new(u32::MAX, 100).slice(all);
        assert!(p.items.is_empty(), "a huge page number does not overflow");
    }
}

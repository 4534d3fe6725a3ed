//! Paging of list operations. Every list that grows with use (orders,
//! acceptances, issues, ledgers, …) answers one page at a time with the total
//! count, so a clerk can walk a province's records and a client can tell when
//! it has them all. Requests carry `page` (from 1) and `page_size` (1 to
//! [`MAX_PAGE_SIZE`]), both optional.

use serde::{Deserialize, Serialize};

/// Largest page a list operation returns.
pub const MAX_PAGE_SIZE: u32 = 500;

/// `page` when a request leaves it out.
pub fn default_page() -> u32 {
    1
}

/// `page_size` when a request leaves it out.
pub fn default_page_size() -> u32 {
    50
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// All items matching the request, on every page.
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
}

/// A checked `page` / `page_size` pair: the rows to skip and to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    page: u32,
    page_size: u32,
}

/// A `page` or `page_size` out of range, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    pub field: &'static str,
    pub message: String,
}

impl Window {
    pub fn new(page: u32, page_size: u32) -> Result<Self, PageError> {
        if page == 0 {
            return Err(PageError {
                field: "page",
                message: "page starts at 1".into(),
            });
        }
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(PageError {
                field: "page_size",
                message: format!("page_size must be between 1 and {MAX_PAGE_SIZE}"),
            });
        }
        Ok(Self { page, page_size })
    }

    /// SQL `LIMIT`.
    pub fn limit(&self) -> i64 {
        self.page_size as i64
    }

    /// SQL `OFFSET`.
    pub fn offset(&self) -> i64 {
        (self.page as i64 - 1) * self.page_size as i64
    }

    pub fn page<T>(&self, items: Vec<T>, total: i64) -> Page<T> {
        Page {
            items,
            total,
            page: self.page,
            page_size: self.page_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_skips_the_pages_before_it() {
        let w = Window::new(3, 20).unwrap();
        assert_eq!((w.limit(), w.offset()), (20, 40));
        assert_eq!(Window::new(1, MAX_PAGE_SIZE).unwrap().offset(), 0);
    }

    #[test]
    fn a_window_out_of_range_names_its_field() {
        assert_eq!(Window::new(0, 10).unwrap_err().field, "page");
        assert_eq!(Window::new(1, 0).unwrap_err().field, "page_size");
        assert_eq!(
            Window::new(1, MAX_PAGE_SIZE + 1).unwrap_err().field,
            "page_size"
        );
    }
}

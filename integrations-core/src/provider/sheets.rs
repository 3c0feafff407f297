//! [`SheetsSink`]: append analytics rows to a named sheet, update a row found by its key.

use std::fmt;

use async_trait::async_trait;

use crate::{Error, Result};

/// One cell value. Amounts go in as [`Cell::Text`] of their decimal string or [`Cell::Int`] of
/// minor units, never as floats.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Cell {
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
    /// Empty.
    Empty,
}

impl Cell {
    /// The cell as the text a spreadsheet shows (`Empty` is `""`).
    pub fn as_text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
            Cell::Empty => String::new(),
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}
impl From<i64> for Cell {
    fn from(i: i64) -> Self {
        Cell::Int(i)
    }
}
impl From<bool> for Cell {
    fn from(b: bool) -> Self {
        Cell::Bool(b)
    }
}

/// A row whose first cell is its key (e.g. `order-42/paid`): the key is what makes appends
/// deduplicable and rows updatable.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Row {
    key: String,
    cells: Vec<Cell>,
}

impl Row {
    /// A row with `key` in its first column.
    pub fn new(key: impl Into<String>) -> Self {
        Row {
            key: key.into(),
            cells: Vec::new(),
        }
    }
    /// Appends a cell after the key.
    #[must_use]
    pub fn cell(mut self, c: impl Into<Cell>) -> Self {
        self.cells.push(c.into());
        self
    }
    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// Cells after the key.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }
    /// Key followed by the cells, as the sheet holds them.
    pub fn to_values(&self) -> Vec<Cell> {
        std::iter::once(Cell::Text(self.key.clone()))
            .chain(self.cells.iter().cloned())
            .collect()
    }
    /// Checks the key is usable.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `row.key` when empty.
    pub fn validate(&self) -> Result<()> {
        if self.key.trim().is_empty() {
            return Err(Error::invalid_input(
                "row.key",
                "every row needs a non-empty key",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row")
            .field("key", &self.key)
            .field("cells", &self.cells)
            .finish()
    }
}

/// Result of an append.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct AppendOutcome {
    /// Rows written now.
    pub appended: usize,
    /// Rows skipped because a row with the same key was already there (a retried append).
    pub already_present: usize,
}

/// Result of an update by key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum UpdateOutcome {
    /// Updated the row at this 1-based index.
    Updated {
        /// Row number in the sheet.
        row: usize,
    },
    /// No row has that key.
    NotFound,
}

/// A spreadsheet sink (Google Sheets, a test double, your own).
#[async_trait]
pub trait SheetsSink: Send + Sync + fmt::Debug {
    /// Sink name (`"google-sheets"`).
    fn name(&self) -> &str;

    /// Appends rows to `sheet`. Rows whose key is already present are not appended again, so a
    /// retried append has no visible second effect. Implementations may buffer; [`Self::flush`]
    /// makes everything accepted so far durable at the provider.
    async fn append_rows(&self, sheet: &str, rows: Vec<Row>) -> Result<AppendOutcome>;

    /// Replaces the row whose key column equals `row.key()`.
    async fn update_row(&self, sheet: &str, row: Row) -> Result<UpdateOutcome>;

    /// Writes out anything buffered. The default does nothing (unbuffered sinks).
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}

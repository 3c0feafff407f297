//! The sandbox's in-memory spreadsheet grid and Google's value semantics over it.

use std::borrow::Cow;

use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use serde_json::Value;

use super::rows::{Rows, SpillConfig};
use crate::a1::{A1Range, Bounds, MAX_COLUMN};

/// Google's default grid of a new sheet: 1000 rows by 26 columns (it grows as data arrives).
const DEFAULT_ROWS: u32 = 1000;
const DEFAULT_COLUMNS: u32 = 26;
/// The sandbox's grid limit: no sheet grows past a million rows.
pub(crate) const MAX_ROWS: u32 = 1_000_000;
/// Google's limit on a spreadsheet: ten million cells, counted over its sheets' grids (rows ×
/// columns, at least 1000 × 26 each), filled or not. A long load test meets it where a real
/// spreadsheet would: at ~384,000 rows of one sheet in the default 26 columns.
pub(crate) const MAX_CELLS: u64 = 10_000_000;

/// The most characters one cell takes: Google refuses a longer input value with 400
/// `INVALID_ARGUMENT`. Counted here in Unicode characters (Google does not say whether a
/// character outside the Basic Multilingual Plane counts once or twice).
pub(crate) const MAX_CELL_CHARS: usize = 50_000;

/// Whether an input value is longer than a cell takes (an array or object as the JSON text
/// the grid stores).
fn over_cell_chars(v: &Value) -> bool {
    let long = |s: &str| s.len() > MAX_CELL_CHARS && s.chars().count() > MAX_CELL_CHARS;
    match v {
        Value::String(s) => long(s),
        Value::Array(_) | Value::Object(_) => long(&v.to_string()),
        _ => false,
    }
}

/// Google's refusal of a write that would take a spreadsheet past [`MAX_CELLS`].
pub(crate) fn over_cell_limit() -> OutOfRange {
    OutOfRange(format!(
        "This action would increase the number of cells in the workbook above the limit of \
         {MAX_CELLS} cells."
    ))
}

/// How far the cells a write sets reach: `(last row, columns)`, both counts from the sheet's
/// start (a write's empty input cells set nothing and grow no grid).
pub(crate) fn reach(area: &Bounds, values: &[Vec<Value>]) -> (u64, u64) {
    let (mut rows, mut columns) = (0u64, 0u64);
    for (i, row) in values.iter().enumerate() {
        if let Some(last) = row.iter().rposition(|v| !v.is_null()) {
            rows = u64::from(area.first_row) + i as u64;
            columns = columns.max(u64::from(area.first_column) + last as u64 + 1);
        }
    }
    (rows, columns)
}

/// How input strings are interpreted (`valueInputOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputOption {
    Raw,
    UserEntered,
}

/// How cells are rendered in responses (`valueRenderOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenderOption {
    Formatted,
    Unformatted,
}

/// One sheet (tab): rows of cells, `Value::Null` for an empty cell; past a limit, the first rows
/// are kept in a file ([`Rows`]).
///
/// Neither a read nor an append looks at every row: the widest row is kept as cells are set
/// (rows never get shorter), and the table the last append found is kept for the next append
/// to the same range while nothing else changed the sheet. Both were scans of the whole sheet
/// (an append at 100,000 rows took ~1 ms, a read of an open range ~75 µs, each ten times that
/// at the grid's million rows), under the sandbox's lock.
#[derive(Debug, Clone)]
pub(crate) struct Sheet {
    pub(crate) title: String,
    rows: Rows,
    /// The length of the longest row (its last stored cell, empty or not).
    widest: u32,
    /// Changes to the sheet so far: a [`LastTable`] holds for the version it was found at.
    version: u64,
    last_table: Option<LastTable>,
}

/// The table an append to `range` found, and the rows it then wrote after it: where the next
/// append to the same range starts, while the sheet is still at `version`.
#[derive(Debug, Clone, Copy)]
struct LastTable {
    range: Bounds,
    version: u64,
    first_row: u32,
    last_row: u32,
    /// The longest of the table's rows.
    widest: u32,
}

/// The rectangle a write touched (1-based rows, 0-based columns, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Area {
    pub(crate) first_row: u32,
    pub(crate) last_row: u32,
    pub(crate) first_column: u32,
    pub(crate) last_column: u32,
}

impl Area {
    /// The area in A1 notation, a single cell as Google writes it (`Orders!A2`, not `A2:A2`).
    pub(crate) fn render(&self, sheet: &str) -> String {
        if self.first_row == self.last_row && self.first_column == self.last_column {
            return A1Range::cell(sheet, self.first_column, self.first_row).to_string();
        }
        A1Range::area(
            sheet,
            self.first_column,
            self.first_row,
            self.last_column,
            self.last_row,
        )
        .to_string()
    }
    pub(crate) fn rows(&self) -> u32 {
        self.last_row - self.first_row + 1
    }
    pub(crate) fn columns(&self) -> u32 {
        self.last_column - self.first_column + 1
    }
}

/// What a write did, for the `updates` / `UpdateValuesResponse` of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) area: Option<Area>,
    pub(crate) cells: u32,
}

/// Result of an append: the table found and where the rows went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) table: Option<Area>,
    pub(crate) written: Written,
}

/// A write that does not fit its range (Google answers 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutOfRange(pub(crate) String);

/// The bounds a write to `range` may fill: a single cell (`A1`) is only the top-left corner, the
/// values extend from it as far as they go; a two-ended range limits them.
pub(crate) fn write_bounds(range: &A1Range) -> Bounds {
    let b = range.bounds();
    if range.end().is_none() {
        Bounds {
            last_row: None,
            last_column: None,
            ..b
        }
    } else {
        b
    }
}

/// The checks of [`Sheet::write`], which change nothing: a batch update checks every write
/// before making the first, so that it applies all of them or none without a copy of the
/// spreadsheet. Returns the widest row's length.
pub(crate) fn check_write(
    area: &Bounds,
    values: &[Vec<Value>],
    range_text: &str,
) -> Result<u64, OutOfRange> {
    let last_written = u64::from(area.first_row) + (values.len().max(1) as u64) - 1;
    if last_written > u64::from(MAX_ROWS) {
        return Err(OutOfRange(format!(
            "Range ({range_text}) exceeds grid limits. Max rows: {MAX_ROWS}, max columns: {}",
            MAX_COLUMN + 1
        )));
    }
    if let Some(last) = area.last_row
        && values.len() as u64 > u64::from(last - area.first_row + 1)
    {
        return Err(OutOfRange(format!(
            "Requested writing within range [{range_text}], but tried writing to row [{}]",
            u64::from(area.first_row) + values.len() as u64 - 1
        )));
    }
    let widest = values.iter().map(Vec::len).max().unwrap_or(0) as u64;
    let limit = area.last_column.unwrap_or(MAX_COLUMN);
    if widest > 0 && u64::from(area.first_column) + widest - 1 > u64::from(limit) {
        return Err(OutOfRange(format!(
            "Requested writing within range [{range_text}], but tried writing to column [{}]",
            crate::a1::column_letters(
                (u64::from(area.first_column) + widest - 1).min(u64::from(u32::MAX)) as u32
            )
        )));
    }
    if values.iter().flatten().any(over_cell_chars) {
        return Err(OutOfRange(format!(
            "Your input contains more than the maximum of {MAX_CELL_CHARS} characters in a \
             single cell."
        )));
    }
    Ok(widest)
}

/// Turns one input value into the stored cell.
pub(crate) fn store(v: &Value, input: InputOption) -> Value {
    match v {
        Value::String(s) if s.is_empty() => Value::Null,
        Value::String(s) if input == InputOption::UserEntered => parse_user_entered(s),
        Value::Array(_) | Value::Object(_) => Value::String(v.to_string()),
        other => other.clone(),
    }
}

fn parse_user_entered(s: &str) -> Value {
    if let Some(text) = s.strip_prefix('\'') {
        return Value::String(text.to_owned());
    }
    let t = s.trim();
    if t.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if t.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = t.parse::<f64>()
        && f.is_finite()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s.to_owned())
}

/// Renders one stored cell.
pub(crate) fn render(v: &Value, option: RenderOption) -> Value {
    match (v, option) {
        (Value::Null, _) => Value::String(String::new()),
        (Value::Bool(b), RenderOption::Formatted) => {
            Value::String(if *b { "TRUE" } else { "FALSE" }.to_owned())
        }
        (Value::Number(n), RenderOption::Formatted) => Value::String(n.to_string()),
        (other, _) => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    v.is_null()
}

/// The column of the row's last non-empty cell inside `area`, if it has one.
fn row_end(cells: &[Value], area: &Area) -> Option<u32> {
    let len = u32::try_from(cells.len()).unwrap_or(u32::MAX);
    if area.first_column >= len {
        return None;
    }
    let last = area.last_column.min(len - 1);
    (area.first_column..=last)
        .rev()
        .find(|&c| !is_empty(&cells[c as usize]))
}

/// The rendered rows of an area of a [`Sheet`] (see [`Sheet::view`]). Serializes as the list
/// of rows [`Sheet::read`] returns.
pub(crate) struct RowsView<'a> {
    sheet: &'a Sheet,
    area: Area,
    /// The last row listed (before `area.first_row` when none is).
    last_row: u32,
    option: RenderOption,
}

impl<'a> RowsView<'a> {
    /// The rows listed, by number.
    fn rows(&self) -> std::ops::RangeInclusive<u32> {
        self.area.first_row..=self.last_row
    }

    /// How many rows are listed.
    pub(crate) fn len(&self) -> usize {
        self.rows().count()
    }

    /// Row `r`'s stored cells in the area, to its last non-empty one (none when it has none).
    fn cells(&self, r: u32) -> Cow<'a, [Value]> {
        let row = self.sheet.row_to(r, self.area.last_column);
        match row_end(&row, &self.area) {
            None => Cow::Borrowed(&[]),
            Some(last) => {
                let cells = self.area.first_column as usize..=last as usize;
                match row {
                    Cow::Borrowed(row) => Cow::Borrowed(&row[cells]),
                    Cow::Owned(mut row) => {
                        row.truncate(last as usize + 1);
                        row.drain(..self.area.first_column as usize);
                        Cow::Owned(row)
                    }
                }
            }
        }
    }
}

impl Serialize for RowsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut rows = serializer.serialize_seq(Some(self.len()))?;
        for r in self.rows() {
            rows.serialize_element(&RowView { view: self, row: r })?;
        }
        rows.end()
    }
}

struct RowView<'v, 'a> {
    view: &'v RowsView<'a>,
    row: u32,
}

impl Serialize for RowView<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let option = self.view.option;
        serializer.collect_seq(
            self.view
                .cells(self.row)
                .iter()
                .map(|v| Rendered(v, option)),
        )
    }
}

/// The same area by columns (see [`RowsView::columns`]): each column of the listed rows, down
/// to its last cell that renders non-empty, up to the last column with such a cell. A cell
/// past the end of a shorter row renders `""`, as Google answers.
pub(crate) struct ColumnsView<'a> {
    rows: RowsView<'a>,
    /// The last listed row of each listed column (`None`: the column's cells all render
    /// empty), from the area's first column on.
    ends: Vec<Option<u32>>,
}

impl<'a> RowsView<'a> {
    /// The same area, by columns: what a `values.get` with `majorDimension=COLUMNS` lists.
    ///
    /// Each listed column's last row is found in one pass over the rows, from the last up,
    /// which reads each row once (a row kept in the sheet's file is read back once here, then
    /// once per column it is listed in).
    pub(crate) fn columns(self) -> ColumnsView<'a> {
        let mut ends: Vec<Option<u32>> = Vec::new();
        for r in self.rows().rev() {
            let cells = self.cells(r);
            if cells.len() > ends.len() {
                ends.resize(cells.len(), None);
            }
            for (end, v) in ends.iter_mut().zip(cells.iter()) {
                if end.is_none() && !v.is_null() && v.as_str() != Some("") {
                    *end = Some(r);
                }
            }
        }
        ColumnsView { rows: self, ends }
    }
}

impl ColumnsView<'_> {
    /// How many columns are listed.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
}

impl Serialize for ColumnsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut columns = serializer.serialize_seq(Some(self.len()))?;
        for (i, end) in self.ends.iter().enumerate() {
            columns.serialize_element(&Column {
                view: &self.rows,
                index: i,
                end: *end,
            })?;
        }
        columns.end()
    }
}

/// One listed column: its cells from the area's first row to its last non-empty one, a cell
/// past the end of a shorter row rendered `""`.
struct Column<'v, 'a> {
    view: &'v RowsView<'a>,
    /// The column's place in the area (0 is the area's first column).
    index: usize,
    end: Option<u32>,
}

impl Serialize for Column<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        static NULL: Value = Value::Null;
        let Some(end) = self.end else {
            return serializer.collect_seq(std::iter::empty::<Rendered<'_>>());
        };
        let view = self.view;
        let mut cells = serializer.serialize_seq(Some((end - view.area.first_row + 1) as usize))?;
        for r in view.area.first_row..=end {
            let row = view.cells(r);
            cells
                .serialize_element(&Rendered(row.get(self.index).unwrap_or(&NULL), view.option))?;
        }
        cells.end()
    }
}

/// One cell as [`render`] renders it, serialized without building the rendered `Value`.
struct Rendered<'a>(&'a Value, RenderOption);

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.0, self.1) {
            (Value::Null, _) => serializer.serialize_str(""),
            (Value::Bool(b), RenderOption::Formatted) => {
                serializer.serialize_str(if *b { "TRUE" } else { "FALSE" })
            }
            (Value::Number(n), RenderOption::Formatted) => serializer.collect_str(n),
            (other, _) => other.serialize(serializer),
        }
    }
}

impl Sheet {
    #[cfg(test)]
    pub(crate) fn new(title: impl Into<String>) -> Self {
        Sheet::spilling(title, None)
    }

    /// A sheet whose first rows go to a file past `spill`'s limit (see [`Rows`]).
    pub(crate) fn spilling(title: impl Into<String>, spill: Option<SpillConfig>) -> Self {
        Sheet {
            title: title.into(),
            rows: Rows::spilling(spill),
            widest: 0,
            version: 0,
            last_table: None,
        }
    }

    /// Rows kept in the sheet's file rather than in memory.
    pub(crate) fn rows_in_file(&self) -> usize {
        self.rows.in_file()
    }

    /// The grid size Google reports: at least 1000 × 26, more when data goes further.
    pub(crate) fn grid(&self) -> (u32, u32) {
        let rows = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        (rows.max(DEFAULT_ROWS), self.widest.max(DEFAULT_COLUMNS))
    }

    /// The grid's cells ([`grid`](Self::grid)) once it has at least `rows` rows and `columns`
    /// columns.
    pub(crate) fn cells_reaching(&self, rows: u64, columns: u64) -> u64 {
        let (r, c) = self.grid();
        u64::from(r).max(rows) * u64::from(c).max(columns)
    }

    /// Row `row`'s cells (1-based; none past the last row).
    fn row(&self, row: u32) -> Cow<'_, [Value]> {
        self.row_to(row, u32::MAX)
    }

    /// Row `row`'s cells up to column `last` at least (a row in the sheet's file is decoded
    /// only that far; one in memory is all there).
    fn row_to(&self, row: u32, last: u32) -> Cow<'_, [Value]> {
        let cells = (last as usize).saturating_add(1);
        self.rows
            .get_upto(row as usize - 1, cells)
            .unwrap_or(Cow::Borrowed(&[]))
    }

    fn set(&mut self, row: u32, column: u32, v: Value) {
        let cells = self.rows.get_mut(row as usize - 1);
        if cells.len() <= column as usize {
            cells.resize(column as usize + 1, Value::Null);
            self.widest = self.widest.max(column + 1);
        }
        cells[column as usize] = v;
    }

    /// The bounds clipped to the grid: `(first_row, last_row, first_col, last_col)`.
    pub(crate) fn clip(&self, b: &Bounds) -> Area {
        let (rows, cols) = self.grid();
        Area {
            first_row: b.first_row,
            last_row: b.last_row.unwrap_or(rows).max(b.first_row),
            first_column: b.first_column,
            last_column: b.last_column.unwrap_or(cols - 1).max(b.first_column),
        }
    }

    /// Rows of rendered values inside `area`, trailing empty cells and rows dropped (as Google
    /// does): what [`view`](Sheet::view) serializes as, built (the tests' reference).
    #[cfg(test)]
    pub(crate) fn read(&self, area: &Area, option: RenderOption) -> Vec<Vec<Value>> {
        let view = self.view(area, option);
        view.rows()
            .map(|r| view.cells(r).iter().map(|v| render(v, option)).collect())
            .collect()
    }

    /// The rendered rows of `area`, trailing empty cells and rows dropped (as Google does), as
    /// a view of the grid that serializes as JSON without building a copy: a `values.get` of a 100,000-row column answers from the grid,
    /// not from a copy of it as a `Value` tree.
    pub(crate) fn view(&self, area: &Area, option: RenderOption) -> RowsView<'_> {
        let data_rows = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        // The last row with a cell in the area's columns; rows after it are dropped.
        let mut last_row = area.last_row.min(data_rows);
        while last_row >= area.first_row
            && row_end(&self.row_to(last_row, area.last_column), area).is_none()
        {
            last_row -= 1;
        }
        RowsView {
            sheet: self,
            area: *area,
            last_row,
            option,
        }
    }

    /// Writes `values` starting at the area's top-left cell. `Null` input leaves a cell as it is.
    ///
    /// # Errors
    /// [`OutOfRange`] when the values do not fit a closed `area`.
    pub(crate) fn write(
        &mut self,
        area: &Bounds,
        values: &[Vec<Value>],
        input: InputOption,
        range_text: &str,
    ) -> Result<Written, OutOfRange> {
        let widest = check_write(area, values, range_text)?;
        self.version += 1;
        let mut cells = 0u32;
        for (i, row) in values.iter().enumerate() {
            let r = area.first_row + i as u32;
            for (j, v) in row.iter().enumerate() {
                if v.is_null() {
                    continue;
                }
                self.set(r, area.first_column + j as u32, store(v, input));
                cells += 1;
            }
        }
        let area = (widest > 0 || !values.is_empty()).then(|| Area {
            first_row: area.first_row,
            last_row: area.first_row + values.len().max(1) as u32 - 1,
            first_column: area.first_column,
            last_column: area.first_column + widest.max(1) as u32 - 1,
        });
        self.rows.after_write();
        Ok(Written { area, cells })
    }

    fn row_has_data(&self, row: u32, first_col: u32, last_col: Option<u32>) -> bool {
        self.row(row)
            .iter()
            .enumerate()
            .skip(first_col as usize)
            .take_while(|(c, _)| last_col.is_none_or(|l| *c as u32 <= l))
            .any(|(_, v)| !is_empty(v))
    }

    /// Google's append: find the table in `range` (the first run of non-empty rows at or below its
    /// first row), then write `values` on the rows after it, inserting new rows when `insert`.
    /// `others` is the cells of the spreadsheet's other sheets: an append that would take the
    /// spreadsheet past [`MAX_CELLS`] is refused and changes nothing.
    pub(crate) fn append(
        &mut self,
        range: &Bounds,
        values: &[Vec<Value>],
        input: InputOption,
        insert: bool,
        others: u64,
    ) -> Result<Appended, OutOfRange> {
        let table = self
            .last_table
            .filter(|t| t.version == self.version && t.range == *range)
            .map(|t| (t.first_row, t.last_row, t.widest))
            .or_else(|| self.find_table(range));
        let table_area = table.map(|(first_row, last_row, widest)| Area {
            first_row,
            last_row,
            first_column: range.first_column,
            last_column: range
                .last_column
                .unwrap_or(widest.saturating_sub(1))
                .max(range.first_column),
        });
        let at = table.map_or(range.first_row, |(_, last_row, _)| last_row + 1);
        if u64::from(at) + values.len() as u64 > u64::from(MAX_ROWS) {
            return Err(OutOfRange(format!(
                "Appending {} rows after row {} exceeds grid limits. Max rows: {MAX_ROWS}",
                values.len(),
                at - 1
            )));
        }
        let target = Bounds {
            first_column: range.first_column,
            last_column: None,
            first_row: at,
            last_row: None,
        };
        // Checked before the rows are inserted: an append refused for its width changes
        // nothing (it used to leave the inserted empty rows behind).
        check_write(&target, values, "")?;
        let inserted = insert && (at as usize) <= self.rows.len();
        let (last_row, columns) = reach(&target, values);
        let rows = if inserted {
            (self.rows.len() + values.len()) as u64
        } else {
            last_row
        };
        if others + self.cells_reaching(rows.max(last_row), columns) > MAX_CELLS {
            return Err(over_cell_limit());
        }
        if inserted {
            self.rows.insert_empty(at as usize - 1, values.len());
        }
        // Moves the sheet to a new version (the insert's too).
        let written = self.write(&target, values, input, "")?;
        // The table now: the same first row, down past the rows just written and whatever data
        // they now touch (rows after the old table's end were empty, or were moved down by
        // the insert); with no table before, found afresh.
        let now = match table {
            Some((first_row, last_row, widest)) => {
                let (last_row, longest) = self.table_end(range, last_row);
                Some((first_row, last_row, widest.max(longest)))
            }
            None => self.find_table(range),
        };
        self.last_table = now.map(|(first_row, last_row, widest)| LastTable {
            range: *range,
            version: self.version,
            first_row,
            last_row,
            widest,
        });
        #[cfg(test)]
        assert_eq!(
            now,
            self.find_table(range),
            "the table kept after an append is the one a scan finds"
        );
        Ok(Appended {
            table: table_area,
            written,
        })
    }

    /// The table in `range`: the first run of rows with data in its columns at or below its
    /// first row (the search for the run's start ends at its last row), as `(first row, last
    /// row, longest row)`. A scan of the sheet.
    fn find_table(&self, range: &Bounds) -> Option<(u32, u32, u32)> {
        let data_rows = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        let last_searched = range.last_row.unwrap_or(data_rows).min(data_rows);
        let start = (range.first_row..=last_searched)
            .find(|r| self.row_has_data(*r, range.first_column, range.last_column))?;
        let start_len = u32::try_from(self.row(start).len()).unwrap_or(u32::MAX);
        let (end, longest) = self.table_end(range, start);
        Some((start, end, start_len.max(longest)))
    }

    /// The table's last row, going down from row `from` (which has data) while the next row
    /// has data in `range`'s columns, and the longest of the rows after `from` up to it.
    fn table_end(&self, range: &Bounds, from: u32) -> (u32, u32) {
        let data_rows = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        let mut end = from;
        let mut longest = 0;
        while end < data_rows && self.row_has_data(end + 1, range.first_column, range.last_column) {
            end += 1;
            longest = longest.max(u32::try_from(self.row(end).len()).unwrap_or(u32::MAX));
        }
        (end, longest)
    }

    /// Every row rendered as text, for test assertions.
    pub(crate) fn snapshot(&self) -> Vec<Vec<String>> {
        self.snapshot_range(0, self.rows.len())
    }

    /// Up to `count` rows from row `first` (0-based) on, as [`snapshot`](Self::snapshot) shows
    /// them.
    pub(crate) fn snapshot_range(&self, first: usize, count: usize) -> Vec<Vec<String>> {
        let end = first.saturating_add(count).min(self.rows.len());
        (first.min(end)..end)
            .filter_map(|i| self.rows.get(i))
            .map(|r| {
                let mut cells: Vec<String> = r
                    .iter()
                    .map(|v| match render(v, RenderOption::Formatted) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect();
                while cells.last().is_some_and(String::is_empty) {
                    cells.pop();
                }
                cells
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "grid_tests.rs"]
mod tests;

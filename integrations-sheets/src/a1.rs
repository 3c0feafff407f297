//! A1 notation: building and parsing ranges such as `'It''s here'!A1:C`.
//!
//! Google reads a range as an optional sheet name, `!`, then one or two cell references. A sheet
//! name that is not a plain identifier must be quoted with single quotes, a quote inside it doubled
//! (`It's here` → `'It''s here'`). A cell reference may omit its row (`A` = whole column) or its
//! column (`5` = whole row), so `A:A`, `2:5` and `A2:C` are all ranges.
//!
//! ```
//! use integrations_sheets::A1Range;
//!
//! let r = A1Range::columns("It's here", 0, 2);
//! assert_eq!(r.to_string(), "'It''s here'!A:C");
//! let parsed: A1Range = "'It''s here'!A5:C7".parse()?;
//! assert_eq!(parsed.sheet_name(), Some("It's here"));
//! assert_eq!(parsed.bounds().first_row, 5);
//! assert_eq!(parsed.bounds().last_row, Some(7));
//! # Ok::<(), integrations_sheets::A1Error>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// The largest column Google Sheets allows (`ZZZ`, 0-based index 18277).
pub const MAX_COLUMN: u32 = 18_277;

/// `0 → A`, `25 → Z`, `26 → AA`, … (0-based column index to letters).
pub fn column_letters(index: u32) -> String {
    let mut n = u64::from(index) + 1;
    let mut out = Vec::new();
    while n > 0 {
        let rem = ((n - 1) % 26) as u8;
        out.push(b'A' + rem);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// `A → 0`, `AA → 26` (letters to 0-based index), case-insensitive; `None` when not 1–3 ASCII
/// letters.
pub fn column_index(letters: &str) -> Option<u32> {
    if letters.is_empty() || letters.len() > 3 {
        return None;
    }
    let mut n: u32 = 0;
    for b in letters.bytes() {
        if !b.is_ascii_alphabetic() {
            return None;
        }
        n = n * 26 + u32::from(b.to_ascii_uppercase() - b'A') + 1;
    }
    Some(n - 1)
}

/// Quotes a sheet name for A1 notation when it needs it (`Orders` stays `Orders`,
/// `It's here` becomes `'It''s here'`).
///
/// A name stays bare only if it is an ASCII identifier (`[A-Za-z_][A-Za-z0-9_]*`) that cannot be
/// mistaken for a cell reference (`A1`, `AB12`) or R1C1 reference (`R1C1`).
pub fn quote_sheet_name(name: &str) -> Cow<'_, str> {
    if is_bare_sheet_name(name) {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(format!("'{}'", name.replace('\'', "''")))
    }
}

fn is_bare_sheet_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_') {
        return false;
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return false;
    }
    // Looks like a cell reference (letters then digits), e.g. `AB12`.
    let letters = name.bytes().take_while(u8::is_ascii_alphabetic).count();
    let rest = &name[letters..];
    if letters <= 3 && !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // R1C1 style, e.g. `R1C1`, `r2c`, `RC`.
    let upper = name.to_ascii_uppercase();
    if let Some(after_r) = upper.strip_prefix('R')
        && let Some((rows, cols)) = after_r.split_once('C')
        && rows.bytes().all(|b| b.is_ascii_digit())
        && cols.bytes().all(|b| b.is_ascii_digit())
    {
        return false;
    }
    !matches!(upper.as_str(), "TRUE" | "FALSE")
}

/// One end of a range: a column (0-based), a row (1-based), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellRef {
    /// 0-based column index (`A` = 0), or `None` for a whole row.
    pub column: Option<u32>,
    /// 1-based row number, or `None` for a whole column.
    pub row: Option<u32>,
}

impl CellRef {
    /// A single cell.
    pub const fn cell(column: u32, row: u32) -> Self {
        CellRef {
            column: Some(column),
            row: Some(row),
        }
    }
    /// A whole column.
    pub const fn column(column: u32) -> Self {
        CellRef {
            column: Some(column),
            row: None,
        }
    }
    /// A whole row.
    pub const fn row(row: u32) -> Self {
        CellRef {
            column: None,
            row: Some(row),
        }
    }
}

impl fmt::Display for CellRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = self.column {
            f.write_str(&column_letters(c))?;
        }
        if let Some(r) = self.row {
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The rectangle a range covers: 0-based columns, 1-based rows, open ends as `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// First column (0-based).
    pub first_column: u32,
    /// Last column (0-based, inclusive), `None` = to the sheet's last column.
    pub last_column: Option<u32>,
    /// First row (1-based).
    pub first_row: u32,
    /// Last row (1-based, inclusive), `None` = to the sheet's last row.
    pub last_row: Option<u32>,
}

/// A range in A1 notation: an optional sheet and zero, one or two cell references.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct A1Range {
    sheet: Option<String>,
    start: Option<CellRef>,
    end: Option<CellRef>,
}

impl A1Range {
    /// The whole sheet (`'My sheet'`).
    pub fn sheet(name: impl Into<String>) -> Self {
        A1Range {
            sheet: Some(name.into()),
            start: None,
            end: None,
        }
    }
    /// One cell (`Orders!B3`): `column` 0-based, `row` 1-based.
    pub fn cell(sheet: impl Into<String>, column: u32, row: u32) -> Self {
        A1Range {
            sheet: Some(sheet.into()),
            start: Some(CellRef::cell(column, row)),
            end: None,
        }
    }
    /// Whole columns `first..=last` (`Orders!A:C`), 0-based.
    pub fn columns(sheet: impl Into<String>, first: u32, last: u32) -> Self {
        A1Range {
            sheet: Some(sheet.into()),
            start: Some(CellRef::column(first)),
            end: Some(CellRef::column(last)),
        }
    }
    /// The rectangle of rows `first_row..=last_row` (1-based) and columns
    /// `first_column..=last_column` (0-based): `Orders!A2:C5`.
    pub fn area(
        sheet: impl Into<String>,
        first_column: u32,
        first_row: u32,
        last_column: u32,
        last_row: u32,
    ) -> Self {
        A1Range {
            sheet: Some(sheet.into()),
            start: Some(CellRef::cell(first_column, first_row)),
            end: Some(CellRef::cell(last_column, last_row)),
        }
    }
    /// A range from its parts; `end` without `start` is ignored.
    pub fn from_parts(sheet: Option<String>, start: Option<CellRef>, end: Option<CellRef>) -> Self {
        let end = if start.is_some() { end } else { None };
        A1Range { sheet, start, end }
    }

    /// The sheet name, unquoted.
    pub fn sheet_name(&self) -> Option<&str> {
        self.sheet.as_deref()
    }
    /// The first cell reference.
    pub fn start(&self) -> Option<CellRef> {
        self.start
    }
    /// The second cell reference.
    pub fn end(&self) -> Option<CellRef> {
        self.end
    }

    /// The covered rectangle. A single cell `B3` covers only itself; `A2:C` runs to the last row;
    /// a whole sheet covers everything. Reversed ends (`C5:A2`) are normalised.
    pub fn bounds(&self) -> Bounds {
        let Some(start) = self.start else {
            return Bounds {
                first_column: 0,
                last_column: None,
                first_row: 1,
                last_row: None,
            };
        };
        let end = self.end.unwrap_or(start);
        let (first_column, last_column) = match (start.column, end.column) {
            (Some(a), Some(b)) => (a.min(b), Some(a.max(b))),
            (Some(a), None) | (None, Some(a)) => (a, None),
            (None, None) => (0, None),
        };
        let (first_row, last_row) = match (start.row, end.row) {
            (Some(a), Some(b)) => (a.min(b), Some(a.max(b))),
            (Some(a), None) | (None, Some(a)) => (a, None),
            (None, None) => (1, None),
        };
        Bounds {
            first_column,
            last_column,
            first_row,
            last_row,
        }
    }

    /// Parses A1 notation (`Sheet1!A1:C`, `'It''s here'!A:A`, `B2`, `My sheet`).
    ///
    /// Without `!`, the text is a cell range if it reads as one, otherwise a sheet name.
    ///
    /// # Errors
    /// [`A1Error`] for an unterminated quote, an empty sheet name, or cell references that do not
    /// parse (or exceed column `ZZZ`).
    pub fn parse(input: &str) -> Result<Self, A1Error> {
        let err = |reason: &'static str| A1Error {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty range"));
        }
        let (sheet, cells) = if let Some(rest) = s.strip_prefix('\'') {
            let (name, after) = split_quoted(rest).ok_or_else(|| err("unterminated quote"))?;
            if name.is_empty() {
                return Err(err("empty sheet name"));
            }
            match after {
                "" => (Some(name), None),
                _ => match after.strip_prefix('!') {
                    Some(cells) => (Some(name), Some(cells)),
                    None => return Err(err("expected `!` after the quoted sheet name")),
                },
            }
        } else if let Some((name, cells)) = s.rsplit_once('!') {
            if name.is_empty() {
                return Err(err("empty sheet name"));
            }
            (Some(name.to_owned()), Some(cells))
        } else if let Some((start, end)) = parse_cells(s) {
            return Ok(A1Range {
                sheet: None,
                start: Some(start),
                end,
            });
        } else {
            (Some(s.to_owned()), None)
        };
        match cells {
            None => Ok(A1Range {
                sheet,
                start: None,
                end: None,
            }),
            Some(cells) => {
                let (start, end) = parse_cells(cells).ok_or_else(|| err("bad cell reference"))?;
                Ok(A1Range {
                    sheet,
                    start: Some(start),
                    end,
                })
            }
        }
    }
}

/// Splits `It''s here'!A1` (after the opening quote) into the unescaped name and the rest.
fn split_quoted(s: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                name.push('\'');
            } else {
                return Some((name, &s[i + 1..]));
            }
        } else {
            name.push(c);
        }
    }
    None
}

fn parse_cells(s: &str) -> Option<(CellRef, Option<CellRef>)> {
    match s.split_once(':') {
        Some((a, b)) => Some((parse_cell(a)?, Some(parse_cell(b)?))),
        None => Some((parse_cell(s)?, None)),
    }
}

fn parse_cell(s: &str) -> Option<CellRef> {
    let s = s.trim().trim_start_matches('$');
    let letters = s.bytes().take_while(u8::is_ascii_alphabetic).count();
    let (col, rest) = s.split_at(letters);
    let rest = rest.strip_prefix('$').unwrap_or(rest);
    let column = if col.is_empty() {
        None
    } else {
        Some(column_index(col).filter(|c| *c <= MAX_COLUMN)?)
    };
    let row = if rest.is_empty() {
        None
    } else {
        if !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(rest.parse::<u32>().ok().filter(|r| *r >= 1)?)
    };
    if column.is_none() && row.is_none() {
        return None;
    }
    Some(CellRef { column, row })
}

impl FromStr for A1Range {
    type Err = A1Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        A1Range::parse(s)
    }
}

impl fmt::Display for A1Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(sheet) = &self.sheet {
            f.write_str(&quote_sheet_name(sheet))?;
            if self.start.is_some() {
                f.write_str("!")?;
            }
        }
        if let Some(start) = self.start {
            write!(f, "{start}")?;
            if let Some(end) = self.end {
                write!(f, ":{end}")?;
            }
        }
        Ok(())
    }
}

/// A range that is not valid A1 notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct A1Error {
    input: String,
    reason: &'static str,
}

impl A1Error {
    /// The text that did not parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for A1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unable to parse range `{}`: {}", self.input, self.reason)
    }
}

impl std::error::Error for A1Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_round_trip() {
        for (i, s) in [
            (0, "A"),
            (25, "Z"),
            (26, "AA"),
            (51, "AZ"),
            (52, "BA"),
            (701, "ZZ"),
        ] {
            assert_eq!(column_letters(i), s);
            assert_eq!(column_index(s), Some(i));
        }
        assert_eq!(column_letters(MAX_COLUMN), "ZZZ");
        assert_eq!(column_index("zzz"), Some(MAX_COLUMN));
        for i in 0..=MAX_COLUMN {
            assert_eq!(column_index(&column_letters(i)), Some(i));
        }
        assert_eq!(column_index(""), None);
        assert_eq!(column_index("AAAA"), None);
        assert_eq!(column_index("A1"), None);
    }

    #[test]
    fn sheet_names_are_quoted_when_needed() {
        assert_eq!(quote_sheet_name("Orders"), "Orders");
        assert_eq!(quote_sheet_name("orders_2024"), "orders_2024");
        assert_eq!(quote_sheet_name("It's here"), "'It''s here'");
        assert_eq!(quote_sheet_name("My Sheet"), "'My Sheet'");
        assert_eq!(quote_sheet_name("A1"), "'A1'");
        assert_eq!(quote_sheet_name("ab12"), "'ab12'");
        assert_eq!(quote_sheet_name("R1C1"), "'R1C1'");
        assert_eq!(quote_sheet_name("rc"), "'rc'");
        assert_eq!(quote_sheet_name("2024"), "'2024'");
        assert_eq!(quote_sheet_name("Ventes-été"), "'Ventes-été'");
        assert_eq!(quote_sheet_name("TRUE"), "'TRUE'");
        assert_eq!(quote_sheet_name(""), "''");
        assert_eq!(quote_sheet_name("ABCD1"), "ABCD1");
    }

    #[test]
    fn ranges_render() {
        assert_eq!(
            A1Range::columns("It's here", 0, 2).to_string(),
            "'It''s here'!A:C"
        );
        assert_eq!(A1Range::cell("Orders", 0, 1).to_string(), "Orders!A1");
        assert_eq!(
            A1Range::area("My Sheet", 0, 2, 27, 9).to_string(),
            "'My Sheet'!A2:AB9"
        );
        assert_eq!(A1Range::sheet("It's here").to_string(), "'It''s here'");
        let open = A1Range::from_parts(
            Some("It's here".into()),
            Some(CellRef::cell(0, 1)),
            Some(CellRef::column(2)),
        );
        assert_eq!(open.to_string(), "'It''s here'!A1:C");
    }

    #[test]
    fn ranges_parse() {
        let r = A1Range::parse("'It''s here'!A1:C").unwrap();
        assert_eq!(r.sheet_name(), Some("It's here"));
        assert_eq!(r.start(), Some(CellRef::cell(0, 1)));
        assert_eq!(r.end(), Some(CellRef::column(2)));
        assert_eq!(
            r.bounds(),
            Bounds {
                first_column: 0,
                last_column: Some(2),
                first_row: 1,
                last_row: None
            }
        );
        let r = A1Range::parse("Sheet1!$B$3").unwrap();
        assert_eq!(r.bounds().first_row, 3);
        assert_eq!(r.bounds().last_row, Some(3));
        assert_eq!(r.bounds().last_column, Some(1));
        let r = A1Range::parse("Orders!2:5").unwrap();
        assert_eq!(r.bounds().first_column, 0);
        assert_eq!(r.bounds().last_column, None);
        assert_eq!((r.bounds().first_row, r.bounds().last_row), (2, Some(5)));
        let r = A1Range::parse("C5:A2").unwrap();
        assert_eq!(r.sheet_name(), None);
        assert_eq!(r.bounds().first_column, 0);
        assert_eq!(r.bounds().last_row, Some(5));
        assert_eq!(
            A1Range::parse("My sheet").unwrap(),
            A1Range::sheet("My sheet")
        );
        assert_eq!(A1Range::parse("'A1'").unwrap(), A1Range::sheet("A1"));
        assert_eq!(A1Range::parse("a!b!A1").unwrap().sheet_name(), Some("a!b"));
        assert_eq!(A1Range::sheet("x").bounds().last_row, None);
    }

    #[test]
    fn bad_ranges_are_errors() {
        for bad in [
            "",
            "'unterminated!A1",
            "''!A1",
            "!A1",
            "Sheet1!",
            "Sheet1!A0",
            "Sheet1!AAAA1",
            "'x'A1",
            "S!A1:",
        ] {
            let e = A1Range::parse(bad).unwrap_err();
            assert!(
                e.to_string().contains("unable to parse range"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn render_parse_round_trip() {
        for name in ["Orders", "It's here", "My Sheet", "A1", "''", "x!y", "R2C3"] {
            for r in [
                A1Range::sheet(name),
                A1Range::cell(name, 3, 7),
                A1Range::columns(name, 0, 0),
                A1Range::area(name, 1, 2, 30, 400),
            ] {
                assert_eq!(A1Range::parse(&r.to_string()).unwrap(), r, "{r}");
            }
        }
    }
}

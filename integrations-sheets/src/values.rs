//! Wire types of `spreadsheets.values` and the conversion between core's [`Cell`] and JSON.

use integrations_core::provider::Cell;
use serde::Deserialize;
use serde_json::Value;

/// Largest integer a JSON number carries exactly through Google (an IEEE double): 2^53.
const EXACT_INT: i64 = 1 << 53;

/// How Google interprets written strings (`valueInputOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ValueInputOption {
    /// Stored exactly as given (`"=1+1"` stays text). The default: no surprises in analytics rows.
    #[default]
    Raw,
    /// Parsed as if typed into the UI (numbers, dates, formulas).
    UserEntered,
}

impl ValueInputOption {
    /// `"RAW"` or `"USER_ENTERED"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ValueInputOption::Raw => "RAW",
            ValueInputOption::UserEntered => "USER_ENTERED",
        }
    }
}

/// How Google renders read values (`valueRenderOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ValueRenderOption {
    /// As displayed (every value a string). The default.
    #[default]
    FormattedValue,
    /// Numbers and booleans as JSON numbers and booleans.
    UnformattedValue,
    /// Formulas as written.
    Formula,
}

impl ValueRenderOption {
    /// The wire name (`"FORMATTED_VALUE"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            ValueRenderOption::FormattedValue => "FORMATTED_VALUE",
            ValueRenderOption::UnformattedValue => "UNFORMATTED_VALUE",
            ValueRenderOption::Formula => "FORMULA",
        }
    }
}

/// Values read from a range (`ValueRange`), row-major.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ValueRange {
    /// The range Google answered for (`Sheet1!A1:A1000`).
    pub range: String,
    /// Rows; trailing empty rows and cells are absent, as Google sends them.
    pub values: Vec<Vec<Cell>>,
}

#[derive(Deserialize)]
pub(crate) struct ValueRangeWire {
    #[serde(default)]
    range: String,
    #[serde(default, rename = "majorDimension")]
    major_dimension: Option<String>,
    #[serde(default)]
    values: Vec<Vec<WireCell>>,
}

/// Google's `BatchGetValuesResponse`: `valueRanges` is absent when no range was asked.
#[derive(Deserialize)]
pub(crate) struct BatchGetWire {
    #[serde(default, rename = "valueRanges")]
    pub(crate) value_ranges: Vec<ValueRangeWire>,
}

/// A cell read straight from the response, as [`cell_from_json`] reads it, without a
/// `serde_json::Value` in between: a read of a whole column (the sink's key lookups) held
/// every cell twice, as a `Value` and as a [`Cell`], ~250 bytes a row at its peak.
pub(crate) struct WireCell(Cell);

impl<'de> Deserialize<'de> for WireCell {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Cell;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a cell value")
            }
            fn visit_unit<E>(self) -> Result<Cell, E> {
                Ok(Cell::Empty)
            }
            fn visit_none<E>(self) -> Result<Cell, E> {
                Ok(Cell::Empty)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Cell, E> {
                Ok(Cell::Bool(b))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Cell, E> {
                Ok(Cell::Int(i))
            }
            fn visit_u64<E>(self, u: u64) -> Result<Cell, E> {
                Ok(i64::try_from(u).map_or_else(|_| Cell::Text(u.to_string()), Cell::Int))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Cell, E> {
                Ok(cell_from_json(&Value::from(f)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Cell, E> {
                Ok(if s.is_empty() {
                    Cell::Empty
                } else {
                    Cell::Text(s.to_owned())
                })
            }
            fn visit_string<E>(self, s: String) -> Result<Cell, E> {
                Ok(if s.is_empty() {
                    Cell::Empty
                } else {
                    Cell::Text(s)
                })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Cell, A::Error> {
                let v = Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(cell_from_json(&v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Cell, A::Error> {
                let v = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(cell_from_json(&v))
            }
        }
        d.deserialize_any(Visit).map(WireCell)
    }
}

impl From<ValueRangeWire> for ValueRange {
    fn from(w: ValueRangeWire) -> Self {
        // Consumed: each row's cells are moved, not copied.
        let rows: Vec<Vec<Cell>> = w
            .values
            .into_iter()
            .map(|r| r.into_iter().map(|c| c.0).collect())
            .collect();
        let values = if w.major_dimension.as_deref() == Some("COLUMNS") {
            let width = rows.iter().map(Vec::len).max().unwrap_or(0);
            (0..width)
                .map(|i| {
                    rows.iter()
                        .map(|col| col.get(i).cloned().unwrap_or(Cell::Empty))
                        .collect()
                })
                .collect()
        } else {
            rows
        };
        ValueRange {
            range: w.range,
            values,
        }
    }
}

/// Google's `UpdateValuesResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct UpdateResponse {
    /// The spreadsheet.
    pub spreadsheet_id: String,
    /// The range written (`'It''s here'!A5:C7`), absent when nothing was.
    pub updated_range: Option<String>,
    /// Rows with at least one cell written.
    pub updated_rows: u32,
    /// Columns with at least one cell written.
    pub updated_columns: u32,
    /// Cells written.
    pub updated_cells: u32,
}

/// Google's `AppendValuesResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct AppendResponse {
    /// The spreadsheet.
    pub spreadsheet_id: String,
    /// The table the rows were appended to, before the append (absent on an empty sheet).
    pub table_range: Option<String>,
    /// Where the rows went.
    pub updates: UpdateResponse,
}

/// Google's `BatchUpdateValuesResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct BatchUpdateResponse {
    /// The spreadsheet.
    pub spreadsheet_id: String,
    /// Rows written, over all ranges.
    pub total_updated_rows: u32,
    /// Columns written, over all ranges.
    pub total_updated_columns: u32,
    /// Cells written, over all ranges.
    pub total_updated_cells: u32,
    /// Sheets touched.
    pub total_updated_sheets: u32,
    /// One answer per range, in request order.
    pub responses: Vec<UpdateResponse>,
}

/// A cell as Google's JSON: text as a string, integers as numbers up to ±2^53 (larger ones as text,
/// which a double would round), booleans, and `Empty` as `""` so that an update clears the cell.
pub fn cell_to_json(c: &Cell) -> Value {
    match c {
        Cell::Text(s) => Value::String(s.clone()),
        Cell::Int(i) if (-EXACT_INT..=EXACT_INT).contains(i) => Value::from(*i),
        Cell::Int(i) => Value::String(i.to_string()),
        Cell::Bool(b) => Value::Bool(*b),
        Cell::Empty => Value::String(String::new()),
    }
}

/// A cell from Google's JSON: strings (`""` is `Empty`), integral numbers as `Int`, other numbers
/// as their text, booleans.
pub fn cell_from_json(v: &Value) -> Cell {
    match v {
        Value::Null => Cell::Empty,
        Value::String(s) if s.is_empty() => Cell::Empty,
        Value::String(s) => Cell::Text(s.clone()),
        Value::Bool(b) => Cell::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cell::Int(i),
            None => Cell::Text(n.to_string()),
        },
        other => Cell::Text(other.to_string()),
    }
}

/// Rows of cells as Google's `values` array.
pub(crate) fn rows_to_json(rows: &[Vec<Cell>]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| Value::Array(r.iter().map(cell_to_json).collect()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_read_from_the_wire_as_from_a_json_value() {
        let samples = json!([
            "order-1", "", null, true, false, 0, 1250, -7, i64::MAX, u64::MAX, 2.5, -0.125,
            1e300, 12345678901234567890.0, [1, "a"], {"k": "v"}, "é ✓"
        ]);
        let want: Vec<Cell> = samples
            .as_array()
            .unwrap()
            .iter()
            .map(cell_from_json)
            .collect();
        let text = serde_json::to_string(&samples).unwrap();
        let got: Vec<WireCell> = serde_json::from_str(&text).unwrap();
        let got: Vec<Cell> = got.into_iter().map(|c| c.0).collect();
        assert_eq!(got, want);
        assert_eq!(got[9], Cell::Text(u64::MAX.to_string()));
        assert_eq!(got[10], Cell::Text("2.5".into()));
    }

    #[test]
    fn cells_round_trip_through_json() {
        for c in [
            Cell::Text("order-1".into()),
            Cell::Int(1250),
            Cell::Int(-7),
            Cell::Bool(true),
            Cell::Empty,
        ] {
            assert_eq!(cell_from_json(&cell_to_json(&c)), c);
        }
        assert_eq!(
            cell_to_json(&Cell::Int(i64::MAX)),
            json!("9223372036854775807")
        );
        assert_eq!(
            cell_to_json(&Cell::Int(1 << 53)),
            json!(9007199254740992_i64)
        );
        assert_eq!(cell_from_json(&json!(2.5)), Cell::Text("2.5".into()));
    }

    #[test]
    fn wire_types_decode_googles_json() {
        let a: AppendResponse = serde_json::from_value(json!({
            "spreadsheetId": "s", "tableRange": "Sheet1!A1:C5",
            "updates": {"spreadsheetId": "s", "updatedRange": "Sheet1!A6:C7", "updatedRows": 2, "updatedColumns": 3, "updatedCells": 6}
        }))
        .unwrap();
        assert_eq!(a.updates.updated_range.as_deref(), Some("Sheet1!A6:C7"));
        assert_eq!(a.updates.updated_rows, 2);
        let v: ValueRange = serde_json::from_value::<ValueRangeWire>(json!({
            "range": "S!A1:B2", "majorDimension": "COLUMNS", "values": [["a", "b"], ["1"]]
        }))
        .unwrap()
        .into();
        assert_eq!(
            v.values,
            vec![
                vec![Cell::Text("a".into()), Cell::Text("1".into())],
                vec![Cell::Text("b".into()), Cell::Empty]
            ]
        );
        let empty: ValueRange = serde_json::from_value::<ValueRangeWire>(
            json!({"range": "S!A1:A1000", "majorDimension": "ROWS"}),
        )
        .unwrap()
        .into();
        assert!(empty.values.is_empty());
    }
}

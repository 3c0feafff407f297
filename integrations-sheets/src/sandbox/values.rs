//! The sandbox's `spreadsheets.values` endpoints: get, batchGet, update, append, batchUpdate.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Endpoint;
use super::grid::{
    ColumnsView, InputOption, MAX_CELLS, RenderOption, RowsView, Written, check_write,
    over_cell_limit, reach, write_bounds,
};
use super::server::Reply;
use super::state::{QuotaKind, State};
use crate::a1::A1Range;

/// Scopes that grant access to spreadsheets.
const SHEETS_SCOPES: [&str; 4] = [
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/drive.file",
    "https://www.googleapis.com/auth/cloud-platform",
];

/// A parsed values request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) endpoint: Endpoint,
    pub(crate) spreadsheet: String,
    pub(crate) range: Option<String>,
}

/// Parses `/v4/spreadsheets/{id}/values/{range}[:append]`, `/v4/spreadsheets/{id}/values:batchUpdate`
/// and `/v4/spreadsheets/{id}/values:batchGet`.
pub(crate) fn route(method: &http::Method, path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v4/spreadsheets/")?;
    let (id, rest) = rest.split_once('/')?;
    let spreadsheet = decode(id)?;
    if rest == "values:batchGet" {
        return (method == http::Method::GET).then_some(Route {
            endpoint: Endpoint::BatchGet,
            spreadsheet,
            range: None,
        });
    }
    if rest == "values:batchUpdate" {
        return (method == http::Method::POST).then_some(Route {
            endpoint: Endpoint::BatchUpdate,
            spreadsheet,
            range: None,
        });
    }
    let raw = rest.strip_prefix("values/")?;
    let (endpoint, raw) = match (method, raw.strip_suffix(":append")) {
        (&http::Method::POST, Some(r)) => (Endpoint::Append, r),
        (&http::Method::GET, None) => (Endpoint::Get, raw),
        (&http::Method::PUT, None) => (Endpoint::Update, raw),
        _ => return None,
    };
    Some(Route {
        endpoint,
        spreadsheet,
        range: Some(decode(raw)?),
    })
}

fn decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn bad_request(message: impl Into<String>) -> Reply {
    Reply::google(400, "INVALID_ARGUMENT", message)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValueRangeIn {
    range: Option<String>,
    major_dimension: Option<String>,
    values: Option<Vec<Vec<Value>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchUpdateIn {
    value_input_option: Option<String>,
    #[serde(default)]
    data: Vec<ValueRangeIn>,
}

fn rows_of(v: ValueRangeIn) -> Result<Vec<Vec<Value>>, Reply> {
    let values = v.values.unwrap_or_default();
    match v.major_dimension.as_deref() {
        None | Some("ROWS") | Some("DIMENSION_UNSPECIFIED") => Ok(values),
        Some("COLUMNS") => Ok(transpose(&values)),
        Some(other) => Err(bad_request(format!(
            "Invalid value at 'data.major_dimension' (type.googleapis.com/google.apps.sheets.v4.Dimension), \"{other}\""
        ))),
    }
}

fn transpose(values: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let width = values.iter().map(Vec::len).max().unwrap_or(0);
    (0..width)
        .map(|c| {
            values
                .iter()
                .map(|col| col.get(c).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect()
}

fn input_option(raw: Option<&str>, field: &str) -> Result<InputOption, Reply> {
    match raw {
        Some("RAW") => Ok(InputOption::Raw),
        Some("USER_ENTERED") => Ok(InputOption::UserEntered),
        None | Some("") | Some("INPUT_VALUE_OPTION_UNSPECIFIED") => Err(bad_request(format!(
            "'{field}' is required but not specified"
        ))),
        Some(other) => Err(bad_request(format!(
            "Invalid value at '{field}' (type.googleapis.com/google.apps.sheets.v4.ValueInputOption), \"{other}\""
        ))),
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("Invalid JSON payload received. {e}")))
}

fn unauthenticated() -> Reply {
    Reply::google(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    )
    .with_header("www-authenticate", "Bearer realm=\"https://accounts.google.com/\"")
}

/// Authenticates a values request (before any fault, as Google does) and counts it as a read or
/// write; `Err` is the 401 or 403 to answer.
pub(crate) fn authenticate(
    state: &mut State,
    route: &Route,
    bearer: Option<&str>,
) -> Result<String, Reply> {
    let user = match bearer.and_then(|t| state.token(t)) {
        Some(issued) => {
            if !issued
                .scopes
                .iter()
                .any(|s| SHEETS_SCOPES.contains(&s.as_str()))
            {
                return Err(Reply::google(
                    403,
                    "PERMISSION_DENIED",
                    "Request had insufficient authentication scopes.",
                ));
            }
            issued.client_email.clone()
        }
        None => {
            state.stats.unauthenticated += 1;
            return Err(unauthenticated());
        }
    };
    if route.endpoint.is_read() {
        state.stats.read_requests += 1;
    } else {
        state.stats.write_requests += 1;
    }
    Ok(user)
}

/// Carries out an authenticated values request past any fault: the per-minute quota, then the
/// operation. `Ok` is the request served (whatever its status), `Err` a refusal before serving.
pub(crate) fn handle(
    state: &mut State,
    route: &Route,
    query: &HashMap<String, String>,
    ranges: &[String],
    bearer: Option<&str>,
    body: &[u8],
) -> Result<Reply, Reply> {
    let Some(user) = bearer
        .and_then(|t| state.token(t))
        .map(|t| t.client_email.clone())
    else {
        // Expired between the check and now.
        return Err(unauthenticated());
    };
    let kind = if route.endpoint.is_read() {
        QuotaKind::Read
    } else {
        QuotaKind::Write
    };
    if !state.take_quota(&user, kind) {
        state.stats.quota_rejections += 1;
        return Err(Reply::json(429, state.quota_error_body(kind)));
    }
    Ok(operate(state, route, query, ranges, body))
}

fn operate(
    state: &mut State,
    route: &Route,
    query: &HashMap<String, String>,
    ranges: &[String],
    body: &[u8],
) -> Reply {
    if !state.spreadsheets.contains_key(&route.spreadsheet) {
        return Reply::google(404, "NOT_FOUND", "Requested entity was not found.");
    }
    let result = match route.endpoint {
        Endpoint::Get => get(state, route, query),
        Endpoint::BatchGet => batch_get(state, route, query, ranges),
        Endpoint::Append => append(state, route, query, body),
        Endpoint::Update => update(state, route, query, body),
        Endpoint::BatchUpdate => batch_update(state, route, body),
        Endpoint::Token => Err(Reply::google(
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
        )),
    };
    result.unwrap_or_else(|r| r)
}

fn parse_range(text: &str) -> Result<A1Range, Reply> {
    A1Range::parse(text).map_err(|_| bad_request(format!("Unable to parse range: {text}")))
}

/// The range, resolving a bare word that names a sheet (`Orders`) to that sheet.
fn resolve(state: &State, spreadsheet: &str, text: &str) -> Result<A1Range, Reply> {
    let named = state
        .spreadsheets
        .get(spreadsheet)
        .is_some_and(|sheets| sheets.iter().any(|s| s.title == text));
    if named {
        Ok(A1Range::sheet(text))
    } else {
        parse_range(text)
    }
}

/// A `ValueRange` answer whose values are a view of the grid.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValueRangeOut<V> {
    major_dimension: &'static str,
    range: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<V>,
}

/// A read's rendering: `valueRenderOption`, and whether `majorDimension` is `COLUMNS`.
fn read_options(query: &HashMap<String, String>) -> Result<(RenderOption, bool), Reply> {
    let render = match query.get("valueRenderOption").map(String::as_str) {
        None | Some("FORMATTED_VALUE") => RenderOption::Formatted,
        Some("UNFORMATTED_VALUE") | Some("FORMULA") => RenderOption::Unformatted,
        Some(other) => {
            return Err(bad_request(format!(
                "Invalid value at 'value_render_option', \"{other}\""
            )));
        }
    };
    let columns = match query.get("majorDimension").map(String::as_str) {
        None | Some("ROWS") | Some("DIMENSION_UNSPECIFIED") => false,
        Some("COLUMNS") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "Invalid value at 'major_dimension', \"{other}\""
            )));
        }
    };
    Ok((render, columns))
}

/// A read's values, by rows or by columns: a view of the grid, written straight from it.
#[derive(Serialize)]
#[serde(untagged)]
enum Values<'a> {
    Rows(RowsView<'a>),
    Columns(ColumnsView<'a>),
}

/// The `ValueRange` of `text` (values absent when the area is empty), and its rows or columns.
fn read<'s>(
    state: &'s mut State,
    spreadsheet: &str,
    text: &str,
    (render, columns): (RenderOption, bool),
) -> Result<(ValueRangeOut<Values<'s>>, usize), Reply> {
    let range = resolve(state, spreadsheet, text)?;
    let sheet = state
        .sheet_mut(spreadsheet, range.sheet_name(), false)
        .ok_or_else(|| bad_request(format!("Unable to parse range: {text}")))?;
    let area = sheet.clip(&range.bounds());
    let range = area.render(&sheet.title);
    let view = sheet.view(&area, render);
    let (major_dimension, listed, values) = if columns {
        let columns = view.columns();
        ("COLUMNS", columns.len(), Values::Columns(columns))
    } else {
        ("ROWS", view.len(), Values::Rows(view))
    };
    let out = ValueRangeOut {
        major_dimension,
        range,
        values: (listed > 0).then_some(values),
    };
    Ok((out, listed))
}

fn get(state: &mut State, route: &Route, query: &HashMap<String, String>) -> Result<Reply, Reply> {
    let options = read_options(query)?;
    let text = route.range.as_deref().unwrap_or_default();
    // Serialized straight from the grid (a sink's full read is the whole key column).
    let (out, listed) = read(state, &route.spreadsheet, text, options)?;
    Ok(Reply::serialized(200, &out).with_rows(listed))
}

/// `values.batchGet`: each of `ranges` read as `values.get` reads it, in the order asked; one
/// range that does not parse or names no sheet fails the whole request, as at Google.
fn batch_get(
    state: &mut State,
    route: &Route,
    query: &HashMap<String, String>,
    ranges: &[String],
) -> Result<Reply, Reply> {
    let options = read_options(query)?;
    let mut value_ranges = Vec::with_capacity(ranges.len());
    let mut listed = 0;
    for text in ranges {
        // Each answer is made into JSON before the next read borrows the grid: batchGet reads
        // a few cells (a sink's check of the rows it updates), not whole columns.
        let (out, n) = read(state, &route.spreadsheet, text, options)?;
        listed += n;
        value_ranges.push(serde_json::to_value(&out).map_err(|e| {
            Reply::google(500, "INTERNAL", format!("Internal error encountered. {e}"))
        })?);
    }
    let mut body = json!({ "spreadsheetId": route.spreadsheet });
    if !value_ranges.is_empty() {
        body["valueRanges"] = Value::Array(value_ranges);
    }
    Ok(Reply::json(200, body).with_rows(listed))
}

fn append(
    state: &mut State,
    route: &Route,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Reply, Reply> {
    let input = input_option(
        query.get("valueInputOption").map(String::as_str),
        "valueInputOption",
    )?;
    let insert = match query.get("insertDataOption").map(String::as_str) {
        None | Some("OVERWRITE") => false,
        Some("INSERT_ROWS") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "Invalid value at 'insert_data_option', \"{other}\""
            )));
        }
    };
    let text = route.range.as_deref().unwrap_or_default();
    let range = resolve(state, &route.spreadsheet, text)?;
    let values = rows_of(parse_body(body)?)?;
    let id = route.spreadsheet.clone();
    let (sheet, others) = state
        .sheet_and_others(&id, range.sheet_name(), true)
        .ok_or_else(|| bad_request(format!("Unable to parse range: {text}")))?;
    let done = sheet
        .append(&write_bounds(&range), &values, input, insert, others)
        .map_err(|e| bad_request(e.0))?;
    let mut out = json!({
        "spreadsheetId": id,
        "updates": updates(&id, &sheet.title, &done.written),
    });
    if let Some(table) = done.table {
        out["tableRange"] = Value::from(table.render(&sheet.title));
    }
    Ok(Reply::json(200, out).with_rows(values.len()))
}

fn updates(id: &str, sheet: &str, w: &Written) -> Value {
    let mut u = json!({"spreadsheetId": id});
    if let Some(area) = w.area {
        u["updatedRange"] = Value::from(area.render(sheet));
        u["updatedRows"] = Value::from(area.rows());
        u["updatedColumns"] = Value::from(area.columns());
        u["updatedCells"] = Value::from(w.cells);
    }
    u
}

fn update(
    state: &mut State,
    route: &Route,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Reply, Reply> {
    let input = input_option(
        query.get("valueInputOption").map(String::as_str),
        "valueInputOption",
    )?;
    let text = route.range.as_deref().unwrap_or_default();
    let range = resolve(state, &route.spreadsheet, text)?;
    let body: ValueRangeIn = parse_body(body)?;
    if let Some(in_body) = body.range.as_deref()
        && resolve(state, &route.spreadsheet, in_body)? != range
    {
        return Err(bad_request(format!(
            "Requested range in the body [{in_body}] does not match the range in the URL [{text}]"
        )));
    }
    let values = rows_of(body)?;
    let id = route.spreadsheet.clone();
    let (sheet, others) = state
        .sheet_and_others(&id, range.sheet_name(), false)
        .ok_or_else(|| bad_request(format!("Unable to parse range: {text}")))?;
    let bounds = write_bounds(&range);
    check_write(&bounds, &values, text).map_err(|e| bad_request(e.0))?;
    let (rows, columns) = reach(&bounds, &values);
    if others + sheet.cells_reaching(rows, columns) > MAX_CELLS {
        return Err(bad_request(over_cell_limit().0));
    }
    let written = sheet
        .write(&bounds, &values, input, text)
        .map_err(|e| bad_request(e.0))?;
    Ok(Reply::json(200, updates(&id, &sheet.title, &written)).with_rows(values.len()))
}

fn batch_update(state: &mut State, route: &Route, body: &[u8]) -> Result<Reply, Reply> {
    let body: BatchUpdateIn = parse_body(body)?;
    let input = input_option(body.value_input_option.as_deref(), "valueInputOption")?;
    let id = route.spreadsheet.clone();
    // Every range and every write checked first, then all made: a batch update applies all of
    // its data or none. The checks change nothing, so no copy of the spreadsheet is kept to
    // undo a write (it was the whole grid, ~30 MB at 100,000 rows, for every update).
    let mut plan = Vec::with_capacity(body.data.len());
    // How far the writes take each sheet's grid: (sheet, last row, columns).
    let mut grown: Vec<(usize, u64, u64)> = Vec::new();
    for (i, v) in body.data.into_iter().enumerate() {
        let Some(text) = v.range.clone() else {
            return Err(bad_request(format!("Invalid data[{i}]: range is required")));
        };
        let range = resolve(state, &id, &text)?;
        let Some((_, at)) = state.sheets_with(&id, range.sheet_name()) else {
            return Err(bad_request(format!("Unable to parse range: {text}")));
        };
        let values = rows_of(v)?;
        let bounds = write_bounds(&range);
        check_write(&bounds, &values, &text).map_err(|e| bad_request(e.0))?;
        let (rows, columns) = reach(&bounds, &values);
        match grown.iter_mut().find(|(s, ..)| *s == at) {
            Some(g) => (g.1, g.2) = (g.1.max(rows), g.2.max(columns)),
            None => grown.push((at, rows, columns)),
        }
        plan.push((text, range, values));
    }
    if let Some((sheets, _)) = state.sheets_with(&id, None) {
        let cells: u64 = sheets
            .iter()
            .enumerate()
            .map(|(j, sheet)| {
                grown
                    .iter()
                    .find(|(s, ..)| *s == j)
                    .map_or(sheet.cells_reaching(0, 0), |&(_, rows, columns)| {
                        sheet.cells_reaching(rows, columns)
                    })
            })
            .sum();
        if cells > MAX_CELLS {
            return Err(bad_request(over_cell_limit().0));
        }
    }
    let mut responses = Vec::new();
    let (mut cells, mut rows_total, mut columns_total) = (0u32, 0u32, 0u32);
    let mut sheets_touched: Vec<String> = Vec::new();
    let mut row_count = 0;
    for (text, range, values) in &plan {
        let Some(sheet) = state.sheet_mut(&id, range.sheet_name(), false) else {
            continue;
        };
        // Cannot fail: checked above.
        let w = sheet
            .write(&write_bounds(range), values, input, text)
            .map_err(|e| Reply::google(500, "INTERNAL", e.0))?;
        cells += w.cells;
        if let Some(a) = w.area {
            rows_total += a.rows();
            columns_total += a.columns();
        }
        if !sheets_touched.contains(&sheet.title) {
            sheets_touched.push(sheet.title.clone());
        }
        row_count += values.len();
        responses.push(updates(&id, &sheet.title, &w));
    }
    Ok(Reply::json(
        200,
        json!({
            "spreadsheetId": id,
            "totalUpdatedRows": rows_total,
            "totalUpdatedColumns": columns_total,
            "totalUpdatedCells": cells,
            "totalUpdatedSheets": sheets_touched.len(),
            "responses": responses,
        }),
    )
    .with_rows(row_count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        let r = route(
            &http::Method::POST,
            "/v4/spreadsheets/abc/values/%27It%27%27s%20here%27%21A1:append",
        )
        .unwrap();
        assert_eq!(r.endpoint, Endpoint::Append);
        assert_eq!(r.spreadsheet, "abc");
        assert_eq!(r.range.as_deref(), Some("'It''s here'!A1"));
        let r = route(
            &http::Method::GET,
            "/v4/spreadsheets/abc/values/Sheet1%21A%3AA",
        )
        .unwrap();
        assert_eq!(
            (r.endpoint, r.range.as_deref()),
            (Endpoint::Get, Some("Sheet1!A:A"))
        );
        let r = route(&http::Method::PUT, "/v4/spreadsheets/abc/values/S!A2:C2").unwrap();
        assert_eq!(r.endpoint, Endpoint::Update);
        let r = route(
            &http::Method::POST,
            "/v4/spreadsheets/abc/values:batchUpdate",
        )
        .unwrap();
        assert_eq!((r.endpoint, r.range), (Endpoint::BatchUpdate, None));
        let r = route(&http::Method::GET, "/v4/spreadsheets/abc/values:batchGet").unwrap();
        assert_eq!((r.endpoint, r.range), (Endpoint::BatchGet, None));
        assert!(route(&http::Method::POST, "/v4/spreadsheets/abc/values:batchGet").is_none());
        assert!(route(&http::Method::DELETE, "/v4/spreadsheets/abc/values/A1").is_none());
        assert!(route(&http::Method::GET, "/v3/whatever").is_none());
    }

    #[test]
    fn endpoint_names_round_trip() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(e.name()), Some(e));
        }
        assert_eq!(Endpoint::BatchUpdate.name(), "values.batchUpdate");
        assert_eq!(Endpoint::from_name("values"), None);
    }
}

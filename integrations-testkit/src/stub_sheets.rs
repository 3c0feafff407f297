//! [`StubSheetsSink`]: an in-memory, scriptable [`SheetsSink`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use super::script::{Script, lock};
use integrations_core::provider::{AppendOutcome, Row, SheetsSink, UpdateOutcome};
use integrations_core::{Error, Result};

/// A [`SheetsSink`] keeping its sheets in memory.
///
/// It keeps the contract of the trait: every row is validated before anything is written (a batch
/// with one bad row writes nothing), a row whose key is already in the sheet — or earlier in the
/// same batch — is counted as `already_present` instead of appended, and updates find rows by
/// key. Row numbers are 1-based. Scripted failures come after that local validation, where a
/// real sink would reach the network.
///
/// ```
/// use integrations_core::provider::{Row, SheetsSink, UpdateOutcome};
/// use integrations_testkit::StubSheetsSink;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sheets = StubSheetsSink::new_ok();
/// let row = Row::new("order-42/paid").cell("59.98").cell("USD");
/// assert_eq!(sheets.append_rows("orders", vec![row.clone()]).await?.appended, 1);
/// assert_eq!(sheets.append_rows("orders", vec![row]).await?.already_present, 1);
/// let updated = sheets.update_row("orders", Row::new("order-42/paid").cell("0.00")).await?;
/// assert_eq!(updated, UpdateOutcome::Updated { row: 1 });
/// assert_eq!(sheets.rows("orders").len(), 1);
/// # Ok::<(), integrations_core::Error>(())
/// # }).unwrap();
/// ```
pub struct StubSheetsSink {
    name: String,
    script: Script,
    sheets: Mutex<BTreeMap<String, StubSheet>>,
}

/// One sheet's rows, and where each key is: an append or update finds a key without reading
/// every row (both did, so a test of N rows cost N² comparisons).
#[derive(Default)]
struct StubSheet {
    rows: Vec<Row>,
    at: HashMap<String, usize>,
}

impl StubSheetsSink {
    /// An empty stub named `stub-sheets`.
    pub fn new_ok() -> Self {
        StubSheetsSink {
            name: "stub-sheets".to_owned(),
            script: Script::default(),
            sheets: Mutex::new(BTreeMap::new()),
        }
    }

    /// Renames the stub.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Makes the next `n` valid calls (append or update) fail with `error()`, before any effect.
    pub fn fail_next(&self, n: usize, error: impl Fn() -> Error + Send + Sync + 'static) {
        self.script.fail_next(n, error);
    }

    /// Drops every scripted failure: the stub answers normally again (an outage ends).
    pub fn clear_failures(&self) {
        self.script.clear();
    }

    /// The rows of `sheet`, in order (empty for an unknown sheet).
    pub fn rows(&self, sheet: &str) -> Vec<Row> {
        lock(&self.sheets)
            .get(sheet)
            .map(|s| s.rows.clone())
            .unwrap_or_default()
    }

    /// Names of the sheets written so far.
    pub fn sheet_names(&self) -> Vec<String> {
        lock(&self.sheets).keys().cloned().collect()
    }

    /// Calls to [`SheetsSink::append_rows`] and [`SheetsSink::update_row`], failed ones included.
    pub fn calls(&self) -> usize {
        self.script.calls()
    }

    fn check_sheet(&self, sheet: &str) -> Result<()> {
        self.script.begin_call();
        if sheet.trim().is_empty() {
            return Err(
                Error::invalid_input("sheet", "the sheet name must not be empty")
                    .with_provider(self.name.clone()),
            );
        }
        Ok(())
    }

    fn scripted_failure(&self) -> Result<()> {
        match self.script.scripted_failure() {
            Some(e) => Err(e.or_provider(self.name.clone())),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for StubSheetsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sheets = lock(&self.sheets);
        let sizes: BTreeMap<&str, usize> = sheets
            .iter()
            .map(|(k, v)| (k.as_str(), v.rows.len()))
            .collect();
        f.debug_struct("StubSheetsSink")
            .field("name", &self.name)
            .field("calls", &self.calls())
            .field("rows_per_sheet", &sizes)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SheetsSink for StubSheetsSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn append_rows(&self, sheet: &str, rows: Vec<Row>) -> Result<AppendOutcome> {
        self.check_sheet(sheet)?;
        for (i, row) in rows.iter().enumerate() {
            row.validate().map_err(|e| {
                let msg = format!("row {i}: {}", e.message());
                Error::invalid_input("row.key", msg).with_provider(self.name.clone())
            })?;
        }
        self.scripted_failure()?;
        let mut sheets = lock(&self.sheets);
        let existing = sheets.entry(sheet.to_owned()).or_default();
        let mut outcome = AppendOutcome::default();
        for row in rows {
            if existing.at.contains_key(row.key()) {
                outcome.already_present += 1;
            } else {
                existing
                    .at
                    .insert(row.key().to_owned(), existing.rows.len());
                existing.rows.push(row);
                outcome.appended += 1;
            }
        }
        Ok(outcome)
    }

    async fn update_row(&self, sheet: &str, row: Row) -> Result<UpdateOutcome> {
        self.check_sheet(sheet)?;
        row.validate()
            .map_err(|e| e.or_provider(self.name.clone()))?;
        self.scripted_failure()?;
        let mut sheets = lock(&self.sheets);
        let Some(existing) = sheets.get_mut(sheet) else {
            return Ok(UpdateOutcome::NotFound);
        };
        match existing.at.get(row.key()) {
            Some(&i) => {
                existing.rows[i] = row;
                Ok(UpdateOutcome::Updated { row: i + 1 })
            }
            None => Ok(UpdateOutcome::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::ErrorKind;

    #[tokio::test]
    async fn dedups_within_and_across_batches() {
        let s = StubSheetsSink::new_ok();
        let out = s
            .append_rows(
                "a",
                vec![Row::new("k1"), Row::new("k2"), Row::new("k1").cell(1_i64)],
            )
            .await
            .unwrap();
        assert_eq!((out.appended, out.already_present), (2, 1));
        let out = s
            .append_rows("a", vec![Row::new("k2"), Row::new("k3")])
            .await
            .unwrap();
        assert_eq!((out.appended, out.already_present), (1, 1));
        assert_eq!(s.rows("a").len(), 3);
        assert!(s.rows("a")[0].cells().is_empty(), "first k1 kept");
        // Another sheet is independent.
        let out = s.append_rows("b", vec![Row::new("k1")]).await.unwrap();
        assert_eq!(out.appended, 1);
        assert_eq!(s.sheet_names(), vec!["a".to_owned(), "b".to_owned()]);
    }

    #[tokio::test]
    async fn invalid_batch_writes_nothing() {
        let s = StubSheetsSink::new_ok();
        let e = s
            .append_rows("a", vec![Row::new("ok"), Row::new(" ")])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.field(), Some("row.key"));
        assert!(e.message().contains("row 1"), "{e}");
        assert!(s.rows("a").is_empty());
        let e = s.append_rows("", vec![Row::new("ok")]).await.unwrap_err();
        assert_eq!(e.field(), Some("sheet"));
    }

    #[tokio::test]
    async fn updates_by_key() {
        let s = StubSheetsSink::new_ok();
        assert_eq!(
            s.update_row("a", Row::new("k")).await.unwrap(),
            UpdateOutcome::NotFound
        );
        s.append_rows("a", vec![Row::new("j"), Row::new("k")])
            .await
            .unwrap();
        assert_eq!(
            s.update_row("a", Row::new("k").cell("new")).await.unwrap(),
            UpdateOutcome::Updated { row: 2 }
        );
        assert_eq!(s.rows("a")[1].cells(), &["new".into()]);
        assert_eq!(
            s.update_row("a", Row::new("")).await.unwrap_err().field(),
            Some("row.key")
        );
        s.fail_next(1, || Error::unavailable("quota"));
        assert!(s.update_row("a", Row::new("k")).await.is_err());
        assert_eq!(s.calls(), 5);
    }
}

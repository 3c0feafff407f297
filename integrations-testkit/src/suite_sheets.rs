//! The behaviour suite every [`SheetsSink`] must pass.

use super::suite_support::Checker;
use integrations_core::ErrorKind;
use integrations_core::provider::{Row, SheetsSink, UpdateOutcome};

/// What [`sheets_sink_suite`] needs: a sheet it may write to and a run id making its keys new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetsSuiteConfig {
    /// Sheet (tab) name to write to.
    pub sheet: String,
    /// Prefix of every row key, so runs against one real sheet do not collide
    /// (see [`unique_run_id`](super::unique_run_id)).
    pub run_id: String,
}

impl SheetsSuiteConfig {
    /// A configuration.
    pub fn new(sheet: impl Into<String>, run_id: impl Into<String>) -> Self {
        SheetsSuiteConfig {
            sheet: sheet.into(),
            run_id: run_id.into(),
        }
    }
}

/// Runs the sheets contract against `s`, panicking with the broken contract's name.
///
/// Appending three new rows appends three; appending the same keys again appends none and
/// reports three already present; a batch mixing a present and a new key appends one; updating
/// an existing key is `Updated` (1-based row), a missing key `NotFound`; a batch containing a row
/// with an empty key is invalid input and writes none of its rows; an update with an empty key is
/// invalid input. [`SheetsSink::flush`] is called after each write, so buffered sinks pass too.
pub async fn sheets_sink_suite(s: &dyn SheetsSink, cfg: &SheetsSuiteConfig) {
    let c = Checker::new("sheets", s.name());
    let sheet = cfg.sheet.as_str();
    let k = |i: u32| format!("{}/row-{i}", cfg.run_id);
    let row = |i: u32| Row::new(k(i)).cell("integrations suite").cell(i64::from(i));
    let flush = || async { c.ok("flush succeeds", s.flush().await) };

    let first = c.ok(
        "appending new rows succeeds",
        s.append_rows(sheet, vec![row(1), row(2), row(3)]).await,
    );
    flush().await;
    c.eq(
        (first.appended, first.already_present),
        (3, 0),
        "new rows are appended (appended, already_present)",
    );

    let again = c.ok(
        "appending rows again succeeds",
        s.append_rows(sheet, vec![row(1), row(2), row(3)]).await,
    );
    flush().await;
    c.eq(
        (again.appended, again.already_present),
        (0, 3),
        "rows whose keys are present are not appended again (appended, already_present)",
    );

    let mixed = c.ok(
        "appending a mixed batch succeeds",
        s.append_rows(sheet, vec![row(2), row(4)]).await,
    );
    flush().await;
    c.eq(
        (mixed.appended, mixed.already_present),
        (1, 1),
        "only the new key of a mixed batch is appended (appended, already_present)",
    );

    let updated = c.ok(
        "updating an existing row succeeds",
        s.update_row(sheet, Row::new(k(2)).cell("updated").cell(22_i64))
            .await,
    );
    flush().await;
    c.check(
        matches!(updated, UpdateOutcome::Updated { row } if row >= 1),
        "updating an existing key reports the (1-based) row updated",
        format!("{updated:?}"),
    );
    let missing = c.ok(
        "updating a missing key succeeds with NotFound",
        s.update_row(sheet, Row::new(k(99)).cell("nothing")).await,
    );
    c.eq(
        missing,
        UpdateOutcome::NotFound,
        "updating a missing key reports NotFound",
    );

    c.err_kind(
        "a batch with an empty row key is invalid input",
        ErrorKind::InvalidInput,
        s.append_rows(sheet, vec![row(5), Row::new("").cell("no key")])
            .await,
    );
    let after = c.ok(
        "appending after a refused batch succeeds",
        s.append_rows(sheet, vec![row(5)]).await,
    );
    flush().await;
    c.eq(after.appended, 1, "a refused batch writes none of its rows");
    c.err_kind(
        "an update with an empty key is invalid input",
        ErrorKind::InvalidInput,
        s.update_row(sheet, Row::new("  ")).await,
    );
}

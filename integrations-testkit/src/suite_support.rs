//! Assertions shared by the behaviour suites: each failure panics naming the suite, the provider
//! and the broken contract.

use std::fmt;

use integrations_core::{Error, ErrorKind, IdempotencyKey, Result};

/// Checks one provider against one suite's contracts.
pub(crate) struct Checker<'a> {
    suite: &'static str,
    provider: &'a str,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(suite: &'static str, provider: &'a str) -> Self {
        Checker { suite, provider }
    }

    /// Panics: `contract` is broken.
    #[track_caller]
    pub(crate) fn fail(&self, contract: &str, detail: impl fmt::Display) -> ! {
        panic!(
            "{} suite: provider `{}` breaks the contract \"{contract}\": {detail}",
            self.suite, self.provider
        )
    }

    /// Panics unless `cond`.
    #[track_caller]
    pub(crate) fn check(&self, cond: bool, contract: &str, detail: impl fmt::Display) {
        if !cond {
            self.fail(contract, detail);
        }
    }

    /// Panics unless `a == b`.
    #[track_caller]
    pub(crate) fn eq<T: PartialEq + fmt::Debug>(&self, a: T, b: T, contract: &str) {
        if a != b {
            self.fail(contract, format!("got {a:?}, expected {b:?}"));
        }
    }

    /// The value, or a panic naming `contract`.
    #[track_caller]
    pub(crate) fn ok<T>(&self, contract: &str, r: Result<T>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => self.fail(contract, format!("unexpected error: {e}")),
        }
    }

    /// The error, or a panic naming `contract`.
    #[track_caller]
    pub(crate) fn err<T: fmt::Debug>(&self, contract: &str, r: Result<T>) -> Error {
        match r {
            Ok(v) => self.fail(contract, format!("succeeded with {v:?}")),
            Err(e) => e,
        }
    }

    /// The error, which must be of `kind`.
    #[track_caller]
    pub(crate) fn err_kind<T: fmt::Debug>(
        &self,
        contract: &str,
        kind: ErrorKind,
        r: Result<T>,
    ) -> Error {
        let e = self.err(contract, r);
        if e.kind() != kind {
            self.fail(
                contract,
                format!("expected a `{kind}` error, got `{}`: {e}", e.kind()),
            );
        }
        e
    }

    /// An [`Error::InvalidInput`] whose field satisfies `field_ok`.
    #[track_caller]
    pub(crate) fn invalid_input<T: fmt::Debug>(
        &self,
        contract: &str,
        field_ok: impl Fn(&str) -> bool,
        r: Result<T>,
    ) -> Error {
        let e = self.err_kind(contract, ErrorKind::InvalidInput, r);
        match e.field() {
            Some(f) if field_ok(f) => e,
            other => self.fail(contract, format!("the error names field {other:?}: {e}")),
        }
    }

    /// `base/part` as an idempotency key.
    #[track_caller]
    pub(crate) fn key(&self, base: &IdempotencyKey, part: &str) -> IdempotencyKey {
        base.child(part).unwrap_or_else(|e| {
            panic!(
                "{} suite: cannot derive an idempotency key from the run id: {e}",
                self.suite
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "x suite: provider `p` breaks the contract \"c\": got 1, expected 2")]
    fn eq_names_everything() {
        Checker::new("x", "p").eq(1, 2, "c");
    }

    #[test]
    #[should_panic(expected = "names field Some(\"b\")")]
    fn invalid_input_checks_the_field() {
        Checker::new("x", "p").invalid_input::<()>(
            "c",
            |f| f == "a",
            Err(Error::invalid_input("b", "m")),
        );
    }

    #[test]
    #[should_panic(expected = "expected a `not_found` error, got `conflict`")]
    fn err_kind_checks_the_kind() {
        Checker::new("x", "p").err_kind::<()>("c", ErrorKind::NotFound, Err(Error::conflict("m")));
    }

    #[test]
    fn passing_checks_return_values() {
        let c = Checker::new("x", "p");
        assert_eq!(c.ok("c", Ok(3)), 3);
        c.check(true, "c", "");
        let e = c.invalid_input::<()>("c", |f| f == "a", Err(Error::invalid_input("a", "m")));
        assert_eq!(e.field(), Some("a"));
    }
}

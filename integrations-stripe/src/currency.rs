//! Amounts at the Stripe boundary: core [`Money`] in ISO 4217 minor units ⇄ Stripe's wire integer.
//!
//! Stripe's `amount` is the currency's minor unit, with these exceptions handled here:
//!
//! | currency | core exponent | Stripe wire | conversion |
//! |---|---|---|---|
//! | ISK, UGX | 0 | two implied decimals, multiple of 100 | `wire = minor × 100` |
//! | MGA | 0 | zero-decimal | identity |
//! | BHD, JOD, KWD, OMR, TND | 3 | three decimals, last digit 0 for payments | identity, refused unless a multiple of 10 |
//!
//! Every conversion is checked: overflow and amounts Stripe cannot represent are errors, never a
//! silently different amount.

use integrations_core::{Currency, Error, Money, Result};

use crate::PROVIDER;

/// Currencies ISO treats as zero-decimal that Stripe still carries with two implied decimals.
const TWO_DECIMALS_ON_WIRE: [Currency; 2] = [Currency::ISK, Currency::UGX];

/// Factor between Stripe's wire integer and core minor units for `currency`.
pub fn wire_factor(currency: Currency) -> i64 {
    if TWO_DECIMALS_ON_WIRE.contains(&currency) {
        100
    } else {
        1
    }
}

/// The integer Stripe expects in `amount` (and `amount_to_capture`, refund `amount`, …) for `money`.
///
/// # Errors
/// [`Error::InvalidInput`] naming `field` when the amount overflows Stripe's representation, or is
/// a three-decimal amount whose last digit is not 0 (Stripe refuses those for payments).
pub fn to_wire(field: &'static str, money: Money) -> Result<i64> {
    let currency = money.currency();
    if currency.exponent() == 3 && money.minor() % 10 != 0 {
        return Err(Error::invalid_input(
            field,
            format!(
                "{money}: Stripe needs {currency} amounts rounded to the nearest ten (last digit 0)"
            ),
        )
        .with_provider(PROVIDER));
    }
    money
        .minor()
        .checked_mul(wire_factor(currency))
        .ok_or_else(|| {
            Error::invalid_input(field, format!("{money} is too large for Stripe"))
                .with_provider(PROVIDER)
        })
}

/// The [`Money`] a Stripe wire integer stands for.
///
/// # Errors
/// [`Error::Provider`] when Stripe reports an ISK/UGX amount with a fractional unit (not a
/// multiple of 100), which core money cannot represent exactly.
pub fn from_wire(wire: i64, currency: Currency) -> Result<Money> {
    let factor = wire_factor(currency);
    if wire % factor != 0 {
        return Err(Error::provider(format!(
            "Stripe amount {wire} in {currency} is not a whole unit (expected a multiple of {factor})"
        ))
        .with_provider(PROVIDER));
    }
    Ok(Money::from_minor(wire / factor, currency))
}

/// Parses Stripe's lower-case currency code (`"usd"`).
///
/// # Errors
/// [`Error::Provider`] for a code core does not know.
pub fn parse_currency(code: &str) -> Result<Currency> {
    Currency::from_code(code).map_err(|e| {
        Error::provider(format!("Stripe reported currency `{code}`: {e}"))
            .with_provider(PROVIDER)
            .with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(minor: i64, c: Currency) -> Money {
        Money::from_minor(minor, c)
    }

    #[test]
    fn ordinary_currencies_are_identity() {
        assert_eq!(to_wire("amount", m(5998, Currency::USD)).unwrap(), 5998);
        assert_eq!(to_wire("amount", m(500, Currency::JPY)).unwrap(), 500);
        assert_eq!(to_wire("amount", m(1500, Currency::MGA)).unwrap(), 1500);
        assert_eq!(to_wire("amount", m(1000, Currency::HUF)).unwrap(), 1000);
        assert_eq!(
            from_wire(5998, Currency::USD).unwrap(),
            m(5998, Currency::USD)
        );
        assert_eq!(
            from_wire(1500, Currency::MGA).unwrap(),
            m(1500, Currency::MGA)
        );
    }

    #[test]
    fn isk_and_ugx_carry_two_implied_decimals() {
        // 5 ISK is 500 on Stripe's wire.
        assert_eq!(to_wire("amount", m(5, Currency::ISK)).unwrap(), 500);
        assert_eq!(
            to_wire("amount", m(12_000, Currency::UGX)).unwrap(),
            1_200_000
        );
        assert_eq!(from_wire(500, Currency::ISK).unwrap(), m(5, Currency::ISK));
        assert_eq!(
            from_wire(1_200_000, Currency::UGX).unwrap(),
            m(12_000, Currency::UGX)
        );
        let e = from_wire(4010, Currency::ISK).unwrap_err();
        assert!(e.to_string().contains("multiple of 100"), "{e}");
        let e = to_wire("amount", m(i64::MAX / 10, Currency::ISK)).unwrap_err();
        assert_eq!(e.field(), Some("amount"));
    }

    #[test]
    fn three_decimal_currencies_need_a_zero_last_digit() {
        assert_eq!(to_wire("amount", m(5120, Currency::KWD)).unwrap(), 5120);
        let e = to_wire("amount_to_capture", m(5124, Currency::KWD)).unwrap_err();
        assert_eq!(e.field(), Some("amount_to_capture"));
        assert!(e.to_string().contains("nearest ten"), "{e}");
        assert_eq!(
            from_wire(5124, Currency::KWD).unwrap(),
            m(5124, Currency::KWD)
        );
    }

    #[test]
    fn round_trip_every_currency() {
        for &c in Currency::ALL {
            let money = m(123_450, c);
            let wire = to_wire("amount", money).unwrap();
            assert_eq!(from_wire(wire, c).unwrap(), money, "{c}");
        }
    }

    #[test]
    fn currency_codes() {
        assert_eq!(parse_currency("usd").unwrap(), Currency::USD);
        assert!(parse_currency("xxx").is_err());
    }
}

//! Money as integer minor units with a currency. No floats anywhere near an amount.
//!
//! ```
//! use integrations_core::money::{Currency, Money};
//!
//! let price = Money::parse("59.98", Currency::USD)?;
//! assert_eq!(price.minor(), 5998);
//! assert_eq!(price.to_string(), "59.98 USD");
//! assert!(Money::parse("59.985", Currency::USD).is_err()); // more decimals than USD has
//! assert_eq!(Money::parse("1500", Currency::JPY)?.minor(), 1500); // zero-decimal
//! # Ok::<(), integrations_core::money::MoneyError>(())
//! ```

use std::fmt;
use std::str::FromStr;

/// Why an amount or currency was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// Not a three-letter code we know.
    #[error("unknown currency `{0}`")]
    UnknownCurrency(String),
    /// Not a decimal number (`"12.50"`, `"-3"`).
    #[error("`{0}` is not a decimal amount")]
    Malformed(String),
    /// More fractional digits than the currency's exponent allows.
    #[error("`{input}` has more than {exponent} decimal places for {currency}")]
    TooPrecise {
        /// Input.
        input: String,
        /// Currency.
        currency: Currency,
        /// Allowed decimals.
        exponent: u8,
    },
    /// The result does not fit in an `i64` of minor units.
    #[error("amount overflows")]
    Overflow,
    /// Two amounts of different currencies were combined.
    #[error("currency mismatch: {0} vs {1}")]
    CurrencyMismatch(Currency, Currency),
}

macro_rules! currencies {
    ($( $code:ident = $exp:literal ),* $(,)?) => {
        impl Currency {
            $(
                #[doc = concat!("`", stringify!($code), "`, ", stringify!($exp), " decimal places.")]
                pub const $code: Currency = Currency { code: *stringify!($code).as_bytes().first_chunk::<3>().unwrap(), exponent: $exp };
            )*
            /// Every currency Stripe supports, with its ISO 4217 exponent.
            pub const ALL: &'static [Currency] = &[$(Currency::$code),*];
        }
    };
}

/// An ISO 4217 currency with its exponent (number of decimal places of its minor unit).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

// ISO 4217 exponents. Where Stripe's API treats a currency differently (MGA, which Stripe treats as
// zero-decimal; ISK and UGX, which Stripe still accepts with two implied decimals on the wire), the
// Stripe crate converts at its boundary; amounts in this crate always mean the currency's real
// minor unit.
currencies! {
    AED = 2, AFN = 2, ALL_ = 2, AMD = 2, ANG = 2, AOA = 2, ARS = 2, AUD = 2, AWG = 2, AZN = 2,
    BAM = 2, BBD = 2, BDT = 2, BGN = 2, BHD = 3, BIF = 0, BMD = 2, BND = 2, BOB = 2, BRL = 2,
    BSD = 2, BWP = 2, BYN = 2, BZD = 2, CAD = 2, CDF = 2, CHF = 2, CLP = 0, CNY = 2, COP = 2,
    CRC = 2, CVE = 2, CZK = 2, DJF = 0, DKK = 2, DOP = 2, DZD = 2, EGP = 2, ETB = 2, EUR = 2,
    FJD = 2, FKP = 2, GBP = 2, GEL = 2, GIP = 2, GMD = 2, GNF = 0, GTQ = 2, GYD = 2, HKD = 2,
    HNL = 2, HTG = 2, HUF = 2, IDR = 2, ILS = 2, INR = 2, ISK = 0, JMD = 2, JOD = 3, JPY = 0,
    KES = 2, KGS = 2, KHR = 2, KMF = 0, KRW = 0, KWD = 3, KYD = 2, KZT = 2, LAK = 2, LBP = 2,
    LKR = 2, LRD = 2, LSL = 2, MAD = 2, MDL = 2, MGA = 0, MKD = 2, MMK = 2, MNT = 2, MOP = 2,
    MUR = 2, MVR = 2, MWK = 2, MXN = 2, MYR = 2, MZN = 2, NAD = 2, NGN = 2, NIO = 2, NOK = 2,
    NPR = 2, NZD = 2, OMR = 3, PAB = 2, PEN = 2, PGK = 2, PHP = 2, PKR = 2, PLN = 2, PYG = 0,
    QAR = 2, RON = 2, RSD = 2, RUB = 2, RWF = 0, SAR = 2, SBD = 2, SCR = 2, SEK = 2, SGD = 2,
    SHP = 2, SLE = 2, SOS = 2, SRD = 2, STD = 2, SZL = 2, THB = 2, TJS = 2, TND = 3, TOP = 2,
    TRY = 2, TTD = 2, TWD = 2, TZS = 2, UAH = 2, UGX = 0, USD = 2, UYU = 2, UZS = 2, VND = 0,
    VUV = 0, WST = 2, XAF = 0, XCD = 2, XOF = 0, XPF = 0, YER = 2, ZAR = 2, ZMW = 2,
}

impl Currency {
    /// Looks up a code, case-insensitively (`"usd"`, `"USD"`).
    ///
    /// # Errors
    /// [`MoneyError::UnknownCurrency`] for anything not in [`Currency::ALL`].
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        let upper = code.to_ascii_uppercase();
        Currency::ALL
            .iter()
            .copied()
            .find(|c| c.code() == upper)
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))
    }

    /// Upper-case ISO code (`"USD"`).
    pub fn code(&self) -> &str {
        // The codes are ASCII by construction (`currencies!`).
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Lower-case code as Stripe's API wants it (`"usd"`).
    pub fn lowercase(&self) -> String {
        self.code().to_ascii_lowercase()
    }

    /// Decimal places of the minor unit (USD 2, JPY 0, KWD 3).
    pub const fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Currency::from_code(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount in integer minor units of a currency (`5998` USD is 59.98 USD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// From minor units.
    pub const fn from_minor(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    /// Parses a decimal string exactly (`"59.98"` → 5998 minor units of USD). Accepts an optional
    /// leading `-`; refuses exponents, thousands separators, and more decimals than the currency has.
    ///
    /// # Errors
    /// [`MoneyError::Malformed`], [`MoneyError::TooPrecise`] or [`MoneyError::Overflow`].
    pub fn parse(input: &str, currency: Currency) -> Result<Money, MoneyError> {
        let malformed = || MoneyError::Malformed(input.to_owned());
        let (negative, digits) = match input.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (digits, None),
        };
        if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let frac = frac_part.unwrap_or("");
        if frac_part.is_some() && frac.is_empty() {
            return Err(malformed());
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let exp = usize::from(currency.exponent);
        // Trailing zeros beyond the exponent are exact ("1.500" USD is 150).
        let significant = frac.trim_end_matches('0');
        if significant.len() > exp {
            return Err(MoneyError::TooPrecise {
                input: input.to_owned(),
                currency,
                exponent: currency.exponent,
            });
        }
        let mut minor: i64 = 0;
        for b in int_part.bytes() {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(b - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        for i in 0..exp {
            let d = significant.as_bytes().get(i).map_or(0, |b| b - b'0');
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(d)))
                .ok_or(MoneyError::Overflow)?;
        }
        Ok(Money {
            minor: if negative { -minor } else { minor },
            currency,
        })
    }

    /// Minor units.
    pub const fn minor(&self) -> i64 {
        self.minor
    }

    /// Currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// `true` if strictly positive.
    pub const fn is_positive(&self) -> bool {
        self.minor > 0
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }

    /// `self + other`, refusing overflow and mixed currencies.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] or [`MoneyError::CurrencyMismatch`].
    pub fn checked_add(&self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..*self })
    }

    /// `self - other`, refusing overflow and mixed currencies.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] or [`MoneyError::CurrencyMismatch`].
    pub fn checked_sub(&self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..*self })
    }

    /// `self × n` (a quantity), refusing overflow.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`].
    pub fn checked_mul(&self, n: i64) -> Result<Money, MoneyError> {
        let minor = self.minor.checked_mul(n).ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..*self })
    }

    /// Sums amounts of one currency (`None` of an empty iterator yields zero).
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] or [`MoneyError::CurrencyMismatch`].
    pub fn sum(
        currency: Currency,
        items: impl IntoIterator<Item = Money>,
    ) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(m))
    }

    /// The decimal amount without the currency (`"59.98"`, `"1500"`, `"-0.005"`).
    pub fn to_decimal_string(&self) -> String {
        let exp = u32::from(self.currency.exponent);
        let abs = self.minor.unsigned_abs();
        let sign = if self.minor < 0 { "-" } else { "" };
        if exp == 0 {
            return format!("{sign}{abs}");
        }
        let div = 10u64.pow(exp);
        format!(
            "{sign}{}.{:0width$}",
            abs / div,
            abs % div,
            width = exp as usize
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(Money::parse("59.98", Currency::USD).unwrap().minor(), 5998);
        assert_eq!(Money::parse("59.9", Currency::USD).unwrap().minor(), 5990);
        assert_eq!(Money::parse("59", Currency::USD).unwrap().minor(), 5900);
        assert_eq!(Money::parse("1.500", Currency::USD).unwrap().minor(), 150);
        assert_eq!(Money::parse("-0.01", Currency::EUR).unwrap().minor(), -1);
        assert_eq!(Money::parse("1500", Currency::JPY).unwrap().minor(), 1500);
        assert_eq!(Money::parse("1.234", Currency::KWD).unwrap().minor(), 1234);
    }

    #[test]
    fn refuses_what_is_not_exact() {
        assert!(matches!(
            Money::parse("59.985", Currency::USD),
            Err(MoneyError::TooPrecise { exponent: 2, .. })
        ));
        assert!(matches!(
            Money::parse("1.5", Currency::JPY),
            Err(MoneyError::TooPrecise { .. })
        ));
        for bad in [
            "", "-", ".5", "5.", "1e3", "1,000.00", "+1", "1.2.3", " 1", "abc", "1.-2",
        ] {
            assert!(
                matches!(
                    Money::parse(bad, Currency::USD),
                    Err(MoneyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            Money::parse("92233720368547758.08", Currency::USD),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn displays_with_exponent() {
        assert_eq!(
            Money::from_minor(5998, Currency::USD).to_string(),
            "59.98 USD"
        );
        assert_eq!(Money::from_minor(5, Currency::USD).to_string(), "0.05 USD");
        assert_eq!(
            Money::from_minor(-5, Currency::USD).to_string(),
            "-0.05 USD"
        );
        assert_eq!(
            Money::from_minor(1500, Currency::JPY).to_string(),
            "1500 JPY"
        );
        assert_eq!(
            Money::from_minor(1234, Currency::KWD).to_string(),
            "1.234 KWD"
        );
        assert_eq!(
            Money::from_minor(i64::MIN, Currency::USD).to_string(),
            "-92233720368547758.08 USD"
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::from_minor(i64::MAX, Currency::USD);
        assert_eq!(
            a.checked_add(Money::from_minor(1, Currency::USD)),
            Err(MoneyError::Overflow)
        );
        assert_eq!(a.checked_mul(2), Err(MoneyError::Overflow));
        assert!(matches!(
            Money::from_minor(1, Currency::USD).checked_add(Money::from_minor(1, Currency::EUR)),
            Err(MoneyError::CurrencyMismatch(_, _))
        ));
        let total = Money::sum(
            Currency::USD,
            [2999, 2999].map(|m| Money::from_minor(m, Currency::USD)),
        )
        .unwrap();
        assert_eq!(total.minor(), 5998);
    }

    #[test]
    fn currency_table() {
        assert_eq!(Currency::from_code("usd").unwrap(), Currency::USD);
        assert_eq!(Currency::from_code("ALL").unwrap().code(), "ALL");
        assert!(Currency::from_code("XXX").is_err());
        for zero in [
            "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
            "VUV", "XAF", "XOF", "XPF",
        ] {
            assert_eq!(Currency::from_code(zero).unwrap().exponent(), 0, "{zero}");
        }
        for three in ["BHD", "JOD", "KWD", "OMR", "TND"] {
            assert_eq!(Currency::from_code(three).unwrap().exponent(), 3, "{three}");
        }
        let json = serde_json::to_string(&Money::from_minor(5, Currency::USD)).unwrap();
        assert_eq!(json, r#"{"minor":5,"currency":"USD"}"#);
        let back: Money = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Money::from_minor(5, Currency::USD));
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(minor in any::<i64>(), currency in any_currency()) {
            let m = Money::from_minor(minor, currency);
            prop_assert_eq!(Money::parse(&m.to_decimal_string(), currency), Ok(m));
        }

        #[test]
        fn parse_then_format_is_canonical(int in 0u64..1_000_000_000, frac in 0u32..1000, currency in any_currency()) {
            let exp = u32::from(currency.exponent());
            let input = if exp == 0 { int.to_string() } else { format!("{int}.{:0w$}", frac % 10u32.pow(exp), w = exp as usize) };
            let m = Money::parse(&input, currency).unwrap();
            prop_assert_eq!(m.to_decimal_string(), input);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,24}", currency in any_currency()) {
            let _ = Money::parse(&s, currency);
        }
    }
}

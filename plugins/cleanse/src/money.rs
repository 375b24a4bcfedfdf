//! Money strings to integer minor units.

use serde::Deserialize;

/// How to read money amounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MoneyRule {
    /// Digits after the decimal separator in the currency (2 for cents).
    pub minor_units: u32,
    /// The decimal separator used in the data: "." (default) or ",".
    pub decimal_separator: String,
}

impl Default for MoneyRule {
    fn default() -> Self {
        MoneyRule {
            minor_units: 2,
            decimal_separator: ".".into(),
        }
    }
}

impl MoneyRule {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.minor_units > 6 {
            return Err(format!(
                "`minor_units` is {}, at most 6 is supported",
                self.minor_units
            ));
        }
        if self.decimal_separator != "." && self.decimal_separator != "," {
            return Err(format!(
                "`decimal_separator` is {:?}, expected \".\" or \",\"",
                self.decimal_separator
            ));
        }
        Ok(())
    }

    fn scale(&self) -> i64 {
        10i64.pow(self.minor_units)
    }

    pub(crate) fn scale_int(&self, v: i64) -> Option<i64> {
        v.checked_mul(self.scale())
    }

    pub(crate) fn scale_float(&self, v: f64) -> Option<i64> {
        let scaled = (v * self.scale() as f64).round();
        (scaled.is_finite() && scaled.abs() < 9.0e18).then_some(scaled as i64)
    }
}

/// Parses `$1,234.56`, `1.234,56 €`, `(12.00)`, `-3`, `EUR 7.5` into minor
/// units (`123456`). Currency symbols, codes and spaces are ignored;
/// thousands separators are the other of `.`/`,`, spaces and `'`.
pub fn parse_money(s: &str, rule: &MoneyRule) -> Result<i64, String> {
    let dec = if rule.decimal_separator == "," {
        ','
    } else {
        '.'
    };
    let mut t = s.trim();
    let mut negative = false;
    if t.starts_with('(') && t.ends_with(')') {
        negative = true;
        t = &t[1..t.len() - 1];
    }
    // Accumulate the digits as an integer: no allocation per value.
    let mut value: i64 = 0;
    let mut frac_digits: u32 = 0;
    let mut seen_dec = false;
    let mut seen_digit = false;
    let too_large = || "amount too large".to_string();
    for c in t.chars() {
        match c {
            '0'..='9' => {
                seen_digit = true;
                if seen_dec {
                    frac_digits += 1;
                    if frac_digits > rule.minor_units {
                        continue;
                    }
                }
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(i64::from(c as u8 - b'0')))
                    .ok_or_else(too_large)?;
            }
            '-' | '\u{2212}' => {
                if negative {
                    return Err("more than one minus sign".into());
                }
                negative = true;
            }
            '+' => {}
            c if c == dec => {
                if seen_dec {
                    return Err(format!("more than one decimal separator `{dec}`"));
                }
                seen_dec = true;
            }
            '.' | ',' | '\'' | '_' => {
                if seen_dec {
                    return Err(format!(
                        "thousands separator `{c}` after the decimal separator"
                    ));
                }
            }
            c if c.is_whitespace() => {}
            // Currency symbols and codes: "$", "€", "EUR", "USD".
            c if c.is_alphabetic()
                || matches!(c, '$' | '€' | '£' | '¥' | '₹' | '¢' | '₩' | '₽' | '₺') => {
            }
            other => return Err(format!("unexpected character `{other}`")),
        }
    }
    if !seen_digit {
        return Err("no digits".into());
    }
    if frac_digits > rule.minor_units {
        return Err(format!(
            "{frac_digits} decimal places, the currency has {}",
            rule.minor_units
        ));
    }
    let v = value
        .checked_mul(10i64.pow(rule.minor_units - frac_digits))
        .ok_or_else(too_large)?;
    Ok(if negative { -v } else { v })
}

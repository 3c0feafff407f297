//! HTML escaping for the confirmation email.

/// `s` with `& < > " '` replaced by entities, safe in element content and quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape(r#"O'Brien & Sons <Ltd> "x""#),
            "O&#39;Brien &amp; Sons &lt;Ltd&gt; &quot;x&quot;"
        );
        assert_eq!(super::escape("plain"), "plain");
    }
}

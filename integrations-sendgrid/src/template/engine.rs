//! A small Handlebars subset: enough for transactional email, and the same syntax SendGrid's
//! dynamic templates use, so one template source can be hosted at SendGrid or rendered here.
//!
//! Supported: `{{name}}`, `{{a.b}}`, `{{this}}`, `{{this.field}}`, `{{#if x}}…{{else}}…{{/if}}`,
//! `{{#each list}}…{{/each}}`, comments `{{! … }}` and `{{!-- … --}}`. Triple braces
//! (`{{{raw}}}`), which print a value without escaping, are refused when the template is built:
//! every value is escaped in HTML output.

use serde_json::Value;

/// How values are written into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// HTML body: every value is escaped.
    Html,
    /// Plain-text body: values as they are.
    Text,
    /// A header (the subject): values as they are, line breaks turned into spaces so a value
    /// cannot start a new header.
    Header,
}

/// A variable reference: `this`-relative or looked up by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    this: bool,
    segments: Vec<String>,
}

impl Path {
    fn parse(s: &str) -> Result<Path, String> {
        let mut segments: Vec<String> = s.split('.').map(str::to_owned).collect();
        let this = segments.first().is_some_and(|f| f == "this");
        if this {
            segments.remove(0);
        }
        let valid = |seg: &String| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if (!this && segments.is_empty()) || !segments.iter().all(valid) {
            return Err(format!("`{s}` is not a variable name"));
        }
        Ok(Path { this, segments })
    }

    fn display(&self) -> String {
        let mut parts = Vec::with_capacity(self.segments.len() + 1);
        if self.this {
            parts.push("this");
        }
        parts.extend(self.segments.iter().map(String::as_str));
        parts.join(".")
    }

    /// The top-level variable this path names, when it is looked up by name.
    fn root_name(&self) -> Option<&str> {
        if self.this {
            None
        } else {
            self.segments.first().map(String::as_str)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Text(String),
    Var(Path),
    If {
        cond: Path,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Each {
        list: Path,
        body: Vec<Node>,
    },
}

enum Frame {
    If {
        cond: Path,
        then: Vec<Node>,
        in_else: bool,
    },
    Each {
        list: Path,
    },
}

/// Parses a template source.
pub(crate) fn parse(src: &str) -> Result<Vec<Node>, String> {
    // Stack of (frame, nodes collected so far in this frame).
    let mut stack: Vec<(Frame, Vec<Node>)> = Vec::new();
    let mut out: Vec<Node> = Vec::new();
    let mut rest = src;
    loop {
        let Some(open) = rest.find("{{") else {
            if !rest.is_empty() {
                current(&mut stack, &mut out).push(Node::Text(rest.to_owned()));
            }
            break;
        };
        if open > 0 {
            current(&mut stack, &mut out).push(Node::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 2..];
        if after.starts_with('{') {
            return Err(
                "triple braces `{{{…}}}` print unescaped HTML and are not supported".into(),
            );
        }
        if let Some(comment) = after.strip_prefix("!--") {
            let end = comment.find("--}}").ok_or("unterminated comment `{{!--`")?;
            rest = &comment[end + 4..];
            continue;
        }
        let close = after.find("}}").ok_or("unterminated `{{`")?;
        let tag = after[..close].trim();
        rest = &after[close + 2..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(arg) = tag.strip_prefix("#if ") {
            let cond = Path::parse(arg.trim())?;
            stack.push((
                Frame::If {
                    cond,
                    then: Vec::new(),
                    in_else: false,
                },
                Vec::new(),
            ));
        } else if let Some(arg) = tag.strip_prefix("#each ") {
            let list = Path::parse(arg.trim())?;
            stack.push((Frame::Each { list }, Vec::new()));
        } else if tag == "else" {
            match stack.last_mut() {
                Some((
                    Frame::If {
                        then,
                        in_else: e @ false,
                        ..
                    },
                    nodes,
                )) => {
                    *then = std::mem::take(nodes);
                    *e = true;
                }
                _ => return Err("`{{else}}` outside `{{#if}}`".into()),
            }
        } else if tag == "/if" || tag == "/each" {
            let node = match stack.pop() {
                Some((
                    Frame::If {
                        cond,
                        then,
                        in_else,
                    },
                    nodes,
                )) if tag == "/if" => {
                    let (then, otherwise) = if in_else {
                        (then, nodes)
                    } else {
                        (nodes, Vec::new())
                    };
                    Node::If {
                        cond,
                        then,
                        otherwise,
                    }
                }
                Some((Frame::Each { list }, nodes)) if tag == "/each" => {
                    Node::Each { list, body: nodes }
                }
                _ => return Err(format!("`{{{{{tag}}}}}` does not close an open block")),
            };
            current(&mut stack, &mut out).push(node);
        } else if tag.starts_with('#') || tag.starts_with('/') || tag.starts_with('>') {
            return Err(format!("`{{{{{tag}}}}}` is not a supported helper"));
        } else {
            current(&mut stack, &mut out).push(Node::Var(Path::parse(tag)?));
        }
    }
    if let Some((frame, _)) = stack.last() {
        let open = match frame {
            Frame::If { .. } => "#if",
            Frame::Each { .. } => "#each",
        };
        return Err(format!("`{{{{{open}}}}}` is never closed"));
    }
    Ok(out)
}

fn current<'a>(stack: &'a mut [(Frame, Vec<Node>)], out: &'a mut Vec<Node>) -> &'a mut Vec<Node> {
    match stack.last_mut() {
        Some((_, nodes)) => nodes,
        None => out,
    }
}

/// Names of the top-level variables `nodes` refer to outside `{{#each}}` blocks, plus the lists
/// the blocks iterate (inside a block a name may be a field of the item).
pub(crate) fn root_names(nodes: &[Node], out: &mut Vec<String>) {
    for n in nodes {
        match n {
            Node::Text(_) => {}
            Node::Var(p) => out.extend(p.root_name().map(str::to_owned)),
            Node::If {
                cond,
                then,
                otherwise,
            } => {
                out.extend(cond.root_name().map(str::to_owned));
                root_names(then, out);
                root_names(otherwise, out);
            }
            Node::Each { list, .. } => out.extend(list.root_name().map(str::to_owned)),
        }
    }
}

/// Escapes `s` for HTML text and attribute values, as Handlebars does (`& < > " ' \` =`).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '`' => out.push_str("&#x60;"),
            '=' => out.push_str("&#x3D;"),
            c => out.push(c),
        }
    }
    out
}

fn lookup<'v>(scopes: &[&'v Value], path: &Path) -> Option<&'v Value> {
    let start = if path.this {
        *scopes.last()?
    } else {
        let first = path.segments.first()?;
        scopes.iter().rev().find_map(|s| s.get(first))?
    };
    let skip = usize::from(!path.this);
    path.segments
        .iter()
        .skip(skip)
        .try_fold(start, |v, seg| v.get(seg))
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(_)) => true,
    }
}

/// Renders `nodes` against `root` in `mode`. Missing values render as nothing (required ones
/// are checked before rendering); a list or object where text is expected is an error naming
/// the variable.
pub(crate) fn render(nodes: &[Node], root: &Value, mode: Mode) -> Result<String, (String, String)> {
    let mut out = String::new();
    render_into(nodes, &mut vec![root], mode, &mut out)?;
    Ok(out)
}

fn render_into(
    nodes: &[Node],
    scopes: &mut Vec<&Value>,
    mode: Mode,
    out: &mut String,
) -> Result<(), (String, String)> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Var(p) => {
                let text = match lookup(scopes, p) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Bool(b)) => b.to_string(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::Array(_) | Value::Object(_)) => {
                        return Err((
                            p.display(),
                            "is a list or an object; print its fields, or iterate it with {{#each}}"
                                .into(),
                        ));
                    }
                };
                match mode {
                    Mode::Html => out.push_str(&escape_html(&text)),
                    Mode::Text => out.push_str(&text),
                    Mode::Header => out.push_str(&text.replace(['\r', '\n'], " ")),
                }
            }
            Node::If {
                cond,
                then,
                otherwise,
            } => {
                let branch = if truthy(lookup(scopes, cond)) {
                    then
                } else {
                    otherwise
                };
                render_into(branch, scopes, mode, out)?;
            }
            Node::Each { list, body } => match lookup(scopes, list) {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        scopes.push(item);
                        let r = render_into(body, scopes, mode, out);
                        scopes.pop();
                        r?;
                    }
                }
                Some(_) => return Err((list.display(), "is not a list".into())),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(src: &str, vars: Value, mode: Mode) -> String {
        render(&parse(src).unwrap(), &vars, mode).unwrap()
    }

    #[test]
    fn variables_are_escaped_in_html_only() {
        let v = json!({"name": "<script>alert('x')</script> & \"co\""});
        assert_eq!(
            r("<p>Hi {{name}}</p>", v.clone(), Mode::Html),
            "<p>Hi &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;co&quot;</p>"
        );
        assert_eq!(
            r("Hi {{ name }}", v, Mode::Text),
            "Hi <script>alert('x')</script> & \"co\""
        );
        assert_eq!(
            r(
                "Order {{id}}",
                json!({"id": "1\r\nBcc: x@evil.example"}),
                Mode::Header
            ),
            "Order 1  Bcc: x@evil.example"
        );
    }

    #[test]
    fn blocks_paths_and_scopes() {
        let v = json!({
            "customer": {"name": "Jane"},
            "items": [{"name": "A<b>", "qty": 2}, {"name": "C", "qty": 1}],
            "note": "",
            "currency": "USD"
        });
        let src = "{{customer.name}}:{{#each items}}[{{this.name}} x{{qty}} {{currency}}]{{/each}}\
                   {{#if note}}N{{else}}no note{{/if}}{{! comment }}{{!-- {{ignored}} --}}";
        assert_eq!(
            r(src, v, Mode::Html),
            "Jane:[A&lt;b&gt; x2 USD][C x1 USD]no note"
        );
        assert_eq!(
            r("{{#each missing}}x{{/each}}{{gone}}", json!({}), Mode::Text),
            ""
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in [
            "{{{raw}}}",
            "{{#if a}}x",
            "{{/if}}",
            "{{#each a}}{{/if}}",
            "{{else}}",
            "{{a b}}",
            "{{> partial}}",
            "{{#unless a}}{{/unless}}",
            "{{a",
            "{{!-- open",
            "{{a..b}}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_where_text_is_expected_name_the_variable() {
        let e = render(
            &parse("{{items}}").unwrap(),
            &json!({"items": [1]}),
            Mode::Text,
        )
        .unwrap_err();
        assert_eq!(e.0, "items");
        let e = render(
            &parse("{{#each n}}{{/each}}").unwrap(),
            &json!({"n": 3}),
            Mode::Text,
        )
        .unwrap_err();
        assert_eq!(e.0, "n");
    }

    #[test]
    fn root_names_skip_block_fields() {
        let mut names = Vec::new();
        root_names(
            &parse("{{a}}{{#if b.c}}{{d}}{{/if}}{{#each e}}{{f}}{{/each}}{{this}}").unwrap(),
            &mut names,
        );
        assert_eq!(names, ["a", "b", "d", "e"]);
    }

    #[test]
    fn escape_covers_handlebars_set() {
        assert_eq!(
            escape_html("&<>\"'`="),
            "&amp;&lt;&gt;&quot;&#x27;&#x60;&#x3D;"
        );
        assert_eq!(escape_html("plain é"), "plain é");
    }
}

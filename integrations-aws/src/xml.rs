//! Just enough XML for the query protocol's responses: leaf elements in document order.

use quick_xml::Reader;
use quick_xml::events::Event;

/// A leaf element: its local name (namespace prefix dropped) and unescaped text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub(crate) name: String,
    pub(crate) text: String,
}

/// Every leaf element of `xml`, in document order. `None` when it is not well-formed XML.
pub(crate) fn leaves(xml: &str) -> Option<Vec<Leaf>> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    // (name, text, has_child_element)
    let mut stack: Vec<(String, String, bool)> = Vec::new();
    let mut out = Vec::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                if let Some(parent) = stack.last_mut() {
                    parent.2 = true;
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                stack.push((name, String::new(), false));
            }
            Event::Empty(e) => {
                if let Some(parent) = stack.last_mut() {
                    parent.2 = true;
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                out.push(Leaf {
                    name,
                    text: String::new(),
                });
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.1.push_str(&t.unescape().ok()?);
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.1.push_str(&String::from_utf8_lossy(&c.into_inner()));
                }
            }
            Event::End(_) => {
                let (name, text, has_child) = stack.pop()?;
                if !has_child {
                    out.push(Leaf { name, text });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    stack.is_empty().then_some(out)
}

/// The text of the first leaf named `name`.
pub(crate) fn first(leaves: &[Leaf], name: &str) -> Option<String> {
    leaves
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_leaves_in_order() {
        let xml = r#"<?xml version="1.0"?>
<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <PublishResult><MessageId>m-1</MessageId><Empty/></PublishResult>
  <ResponseMetadata><RequestId>r&amp;1</RequestId></ResponseMetadata>
</PublishResponse>"#;
        let l = leaves(xml).unwrap();
        let names: Vec<_> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["MessageId", "Empty", "RequestId"]);
        assert_eq!(first(&l, "RequestId").as_deref(), Some("r&1"));
        assert_eq!(first(&l, "Nope"), None);
    }

    #[test]
    fn malformed_is_none() {
        assert!(leaves("<a><b>x</a>").is_none());
        assert!(leaves("<a>").is_none());
    }
}

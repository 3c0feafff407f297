//! Email templates that declare their variables, rendered locally with HTML escaping or sent as
//! provider-hosted templates.
//!
//! Nothing here depends on SendGrid: it uses core's [`EmailMessage`] and [`EmailCapabilities`]
//! only, so another provider (Amazon SES, which has no hosted Handlebars templates) can reuse it.
//!
//! | item | what |
//! |---|---|
//! | [`Template`] | subject, text and HTML sources; required and optional variables; an optional hosted id |
//! | [`TemplateRegistry`] | templates by name; builds a ready [`EmailMessageBuilder`] for a provider's capabilities |
//! | [`escape_html`] | the escaping applied to every value in HTML output |
//!
//! Sources use a Handlebars subset (`{{name}}`, `{{a.b}}`, `{{#if}}…{{else}}…{{/if}}`,
//! `{{#each}}…{{/each}}`), the syntax SendGrid's dynamic templates use, so the same source can be
//! uploaded to SendGrid. Every value is escaped in HTML output; triple braces (unescaped output)
//! are refused when a template is built.
//!
//! ```
//! use integrations_core::provider::EmailCapabilities;
//! use integrations_sendgrid::template::{Template, TemplateRegistry};
//! use serde_json::json;
//!
//! let mut registry = TemplateRegistry::new();
//! registry.insert(
//!     Template::builder("payment_received")
//!         .subject("Payment received for order #{{order_id}}")
//!         .html("<p>Hi {{customer_name}}, we received {{amount}}.</p>")
//!         .required(["customer_name", "order_id", "amount"])
//!         .build()?,
//! );
//! let vars = json!({"customer_name": "<b>Jane</b>", "order_id": "42", "amount": "59.98 USD"});
//! let msg = registry
//!     .message("payment_received", "shop@example.com", "jane@example.com",
//!              vars.as_object().unwrap(), EmailCapabilities::default())?
//!     .build();
//! let integrations_core::provider::EmailBody::Content { html, .. } = &msg.body else { panic!() };
//! assert!(html.as_deref().unwrap().contains("&lt;b&gt;Jane&lt;/b&gt;"));
//!
//! // A missing variable fails before anything is sent, naming it.
//! let err = registry
//!     .message("payment_received", "shop@example.com", "jane@example.com",
//!              json!({"order_id": "42", "amount": "1.00 USD"}).as_object().unwrap(),
//!              EmailCapabilities::default())
//!     .unwrap_err();
//! assert_eq!(err.field(), Some("customer_name"));
//! # Ok::<(), integrations_core::Error>(())
//! ```

mod engine;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use integrations_core::provider::{EmailCapabilities, EmailMessage, EmailMessageBuilder, Mailbox};
use integrations_core::{Error, Result};
use serde_json::{Map, Value};

pub use engine::escape_html;
use engine::{Mode, Node};

/// A template's variables: a JSON object.
pub type Variables = Map<String, Value>;

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rendered {
    /// Subject (line breaks in values replaced by spaces).
    pub subject: String,
    /// Plain-text body.
    pub text: Option<String>,
    /// HTML body, every value escaped.
    pub html: Option<String>,
}

/// One email template. Build with [`Template::builder`].
#[derive(Clone, PartialEq)]
pub struct Template {
    name: Cow<'static, str>,
    subject: Vec<Node>,
    text: Option<Vec<Node>>,
    html: Option<Vec<Node>>,
    required: BTreeSet<String>,
    optional: BTreeSet<String>,
    hosted_id: Option<String>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("required", &self.required)
            .field("optional", &self.optional)
            .field("hosted_id", &self.hosted_id)
            .finish_non_exhaustive()
    }
}

/// Builder for [`Template`].
#[derive(Debug, Clone)]
pub struct TemplateBuilder {
    name: Cow<'static, str>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    required: BTreeSet<String>,
    optional: BTreeSet<String>,
    hosted_id: Option<String>,
}

impl TemplateBuilder {
    /// Subject source.
    #[must_use]
    pub fn subject(mut self, src: impl Into<String>) -> Self {
        self.subject = src.into();
        self
    }
    /// Plain-text source.
    #[must_use]
    pub fn text(mut self, src: impl Into<String>) -> Self {
        self.text = Some(src.into());
        self
    }
    /// HTML source.
    #[must_use]
    pub fn html(mut self, src: impl Into<String>) -> Self {
        self.html = Some(src.into());
        self
    }
    /// Declares variables every send must supply (absent or `null` fails before sending).
    #[must_use]
    pub fn required<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required.extend(names.into_iter().map(Into::into));
        self
    }
    /// Declares variables a send may leave out (they render as nothing).
    #[must_use]
    pub fn optional<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.optional.extend(names.into_iter().map(Into::into));
        self
    }
    /// The provider-hosted copy of this template (a SendGrid dynamic template id, `d-…`).
    #[must_use]
    pub fn hosted_id(mut self, id: impl Into<String>) -> Self {
        self.hosted_id = Some(id.into());
        self
    }

    /// Parses the sources and checks that every top-level variable they use is declared.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `template.<name>` for a syntax error, an undeclared
    /// variable, a missing subject or body, or a variable declared both required and optional.
    pub fn build(self) -> Result<Template> {
        let setting = format!("template.{}", self.name);
        let bad = |msg: String| Error::configuration(setting.clone(), msg);
        let parse =
            |which: &str, src: &str| engine::parse(src).map_err(|e| bad(format!("{which}: {e}")));
        if self.subject.trim().is_empty() {
            return Err(bad("a subject is required".into()));
        }
        if self.text.is_none() && self.html.is_none() {
            return Err(bad("a text or HTML body is required".into()));
        }
        if let Some(both) = self.required.intersection(&self.optional).next() {
            return Err(bad(format!(
                "`{both}` is declared both required and optional"
            )));
        }
        let subject = parse("subject", &self.subject)?;
        let text = self.text.as_deref().map(|s| parse("text", s)).transpose()?;
        let html = self.html.as_deref().map(|s| parse("html", s)).transpose()?;
        let mut used = Vec::new();
        for nodes in [Some(&subject), text.as_ref(), html.as_ref()]
            .into_iter()
            .flatten()
        {
            engine::root_names(nodes, &mut used);
        }
        if let Some(u) = used
            .iter()
            .find(|u| !self.required.contains(*u) && !self.optional.contains(*u))
        {
            return Err(bad(format!(
                "uses `{u}`, which is declared neither required nor optional"
            )));
        }
        Ok(Template {
            name: self.name,
            subject,
            text,
            html,
            required: self.required,
            optional: self.optional,
            hosted_id: self.hosted_id,
        })
    }
}

impl Template {
    /// Starts a template called `name`.
    pub fn builder(name: impl Into<Cow<'static, str>>) -> TemplateBuilder {
        TemplateBuilder {
            name: name.into(),
            subject: String::new(),
            text: None,
            html: None,
            required: BTreeSet::new(),
            optional: BTreeSet::new(),
            hosted_id: None,
        }
    }

    /// The template's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Variables every send must supply.
    pub fn required_variables(&self) -> impl Iterator<Item = &str> {
        self.required.iter().map(String::as_str)
    }
    /// Variables a send may leave out.
    pub fn optional_variables(&self) -> impl Iterator<Item = &str> {
        self.optional.iter().map(String::as_str)
    }
    /// The provider-hosted id, if any.
    pub fn hosted_id(&self) -> Option<&str> {
        self.hosted_id.as_deref()
    }
    /// Sets (or clears) the provider-hosted id.
    pub fn set_hosted_id(&mut self, id: Option<String>) {
        self.hosted_id = id;
    }

    /// Checks that every required variable is present and not `null`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] whose field is the first missing variable's name.
    pub fn check(&self, vars: &Variables) -> Result<()> {
        for r in &self.required {
            if vars.get(r).is_none_or(Value::is_null) {
                return Err(Error::invalid_input(
                    r.clone(),
                    format!("template `{}` requires the variable `{r}`", self.name),
                ));
            }
        }
        Ok(())
    }

    /// Checks the variables, then renders subject, text and HTML. Every value is HTML-escaped in
    /// the HTML body; line breaks in values become spaces in the subject.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming a missing required variable, or a variable that holds a
    /// list or object where text is expected.
    pub fn render(&self, vars: &Variables) -> Result<Rendered> {
        self.check(vars)?;
        let root = Value::Object(vars.clone());
        let run = |nodes: &[Node], mode| {
            engine::render(nodes, &root, mode).map_err(|(var, msg)| {
                Error::invalid_input(
                    var.clone(),
                    format!("template `{}`: `{var}` {msg}", self.name),
                )
            })
        };
        Ok(Rendered {
            subject: run(&self.subject, Mode::Header)?,
            text: self
                .text
                .as_deref()
                .map(|n| run(n, Mode::Text))
                .transpose()?,
            html: self
                .html
                .as_deref()
                .map(|n| run(n, Mode::Html))
                .transpose()?,
        })
    }
}

/// Templates by name.
#[derive(Debug, Clone, Default)]
pub struct TemplateRegistry {
    templates: BTreeMap<String, Template>,
}

impl TemplateRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        TemplateRegistry::default()
    }

    /// Adds or replaces a template; returns the one it replaced.
    pub fn insert(&mut self, template: Template) -> Option<Template> {
        self.templates.insert(template.name().to_owned(), template)
    }

    /// A template by name.
    pub fn get(&self, name: &str) -> Option<&Template> {
        self.templates.get(name)
    }

    /// All templates, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    /// The template whose hosted id is `id`.
    pub fn by_hosted_id(&self, id: &str) -> Option<&Template> {
        self.templates.values().find(|t| t.hosted_id() == Some(id))
    }

    /// Sets the hosted id of the template called `name`.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming `template.<name>` if there is no such template.
    pub fn set_hosted_id(&mut self, name: impl AsRef<str>, id: impl Into<String>) -> Result<()> {
        let name = name.as_ref();
        let t = self.templates.get_mut(name).ok_or_else(|| {
            Error::configuration(format!("template.{name}"), "no template of that name")
        })?;
        t.set_hosted_id(Some(id.into()));
        Ok(())
    }

    fn require(&self, name: &str) -> Result<&Template> {
        self.get(name).ok_or_else(|| {
            Error::configuration(format!("template.{name}"), "no template of that name")
        })
    }

    /// Renders the template called `name` locally.
    ///
    /// # Errors
    /// As [`Template::render`]; [`Error::Configuration`] for an unknown name.
    pub fn render(&self, name: impl AsRef<str>, vars: &Variables) -> Result<Rendered> {
        self.require(name.as_ref())?.render(vars)
    }

    /// A message from `from` to `to` using the template called `name`, checked before anything is
    /// sent. With a hosted id and a provider that supports hosted templates
    /// (`capabilities.templates`), the body is the hosted template and its variables; otherwise
    /// the template is rendered here, every value HTML-escaped. Add categories, custom args
    /// (the order id) and so on to the returned builder.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming a missing variable; [`Error::Configuration`] for an unknown
    /// template.
    pub fn message(
        &self,
        name: impl AsRef<str>,
        from: impl Into<Mailbox>,
        to: impl Into<Mailbox>,
        vars: &Variables,
        capabilities: EmailCapabilities,
    ) -> Result<EmailMessageBuilder> {
        let t = self.require(name.as_ref())?;
        let builder = EmailMessage::builder(from).to(to);
        match t.hosted_id() {
            Some(id) if capabilities.templates => {
                t.check(vars)?;
                Ok(vars.iter().fold(builder.template(id), |b, (k, v)| {
                    b.variable(k.clone(), v.clone())
                }))
            }
            _ => {
                let r = t.render(vars)?;
                let mut b = builder.subject(r.subject);
                if let Some(text) = r.text {
                    b = b.text(text);
                }
                if let Some(html) = r.html {
                    b = b.html(html);
                }
                Ok(b)
            }
        }
    }

    /// Checks the variables of a message that uses hosted template `template_id`, when a
    /// registered template has that id: each envelope's data (message variables overlaid with
    /// the envelope's own) must hold every required variable. Unknown ids pass.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the missing variable.
    pub fn check_hosted<'a>(
        &self,
        template_id: &str,
        envelopes: impl IntoIterator<Item = &'a Variables>,
    ) -> Result<()> {
        let Some(t) = self.by_hosted_id(template_id) else {
            return Ok(());
        };
        for (i, vars) in envelopes.into_iter().enumerate() {
            t.check(vars).map_err(|e| {
                let field = e.field().unwrap_or_default().to_owned();
                Error::invalid_input(
                    field.clone(),
                    format!(
                        "template `{}` ({template_id}) requires the variable `{field}` (personalization {i})",
                        t.name()
                    ),
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrations_core::provider::EmailBody;
    use serde_json::json;

    fn vars(v: Value) -> Variables {
        v.as_object().unwrap().clone()
    }

    fn welcome() -> Template {
        Template::builder("welcome")
            .subject("Welcome {{name}}")
            .text("Hi {{name}}{{#if code}}, code {{code}}{{/if}}")
            .html("<p>Hi {{name}}</p>")
            .required(["name"])
            .optional(["code"])
            .build()
            .unwrap()
    }

    #[test]
    fn declared_variables_are_enforced_at_build_and_send() {
        let e = Template::builder("t")
            .subject("{{a}}")
            .text("{{b}}")
            .required(["a"])
            .build()
            .unwrap_err();
        assert_eq!(e.field(), Some("template.t"));
        assert!(e.to_string().contains("`b`"), "{e}");
        assert!(Template::builder("t").subject("s").build().is_err());
        assert!(
            Template::builder("t")
                .subject("s")
                .text("x")
                .required(["a"])
                .optional(["a"])
                .build()
                .is_err()
        );
        let t = welcome();
        assert_eq!(
            t.render(&vars(json!({}))).unwrap_err().field(),
            Some("name")
        );
        assert_eq!(
            t.render(&vars(json!({"name": null}))).unwrap_err().field(),
            Some("name")
        );
        let r = t.render(&vars(json!({"name": "Jo"}))).unwrap();
        assert_eq!(r.subject, "Welcome Jo");
        assert_eq!(r.text.as_deref(), Some("Hi Jo"));
    }

    #[test]
    fn message_is_hosted_only_when_the_provider_supports_it() {
        let mut reg = TemplateRegistry::new();
        reg.insert(welcome());
        reg.set_hosted_id("welcome", "d-welcome").unwrap();
        assert!(reg.set_hosted_id("nope", "d-x").is_err());
        let v = vars(json!({"name": "<i>Jo</i>"}));
        let hosted = reg
            .message(
                "welcome",
                "s@example.com",
                "r@example.com",
                &v,
                EmailCapabilities::all(),
            )
            .unwrap()
            .build();
        match &hosted.body {
            EmailBody::Template { id, variables } => {
                assert_eq!(id, "d-welcome");
                assert_eq!(variables["name"], "<i>Jo</i>");
            }
            other => panic!("{other:?}"),
        }
        let local = reg
            .message(
                "welcome",
                "s@example.com",
                "r@example.com",
                &v,
                EmailCapabilities::default(),
            )
            .unwrap()
            .build();
        match &local.body {
            EmailBody::Content { html, .. } => {
                assert_eq!(html.as_deref(), Some("<p>Hi &lt;i&gt;Jo&lt;/i&gt;</p>"));
            }
            other => panic!("{other:?}"),
        }
        assert!(local.validate().is_ok());
    }

    #[test]
    fn hosted_checks_name_the_variable() {
        let mut reg = TemplateRegistry::new();
        reg.insert(welcome());
        reg.set_hosted_id("welcome", "d-welcome").unwrap();
        let good = vars(json!({"name": "x"}));
        let bad = vars(json!({"code": "1"}));
        assert!(reg.check_hosted("d-welcome", [&good]).is_ok());
        assert!(reg.check_hosted("d-other", [&bad]).is_ok());
        let e = reg.check_hosted("d-welcome", [&good, &bad]).unwrap_err();
        assert_eq!(e.field(), Some("name"));
        assert!(e.to_string().contains("personalization 1"), "{e}");
        assert!(reg.by_hosted_id("d-welcome").is_some());
        assert_eq!(reg.iter().count(), 1);
    }
}

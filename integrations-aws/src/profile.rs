//! The shared AWS `config` and `credentials` files (INI), as far as this crate reads them, and
//! [`ProfileCredentials`].

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use integrations_core::{Error, Result};

use crate::credentials::{Credentials, CredentialsProvider, EnvLookup, process_env};

/// Profile keys that name a credential source this crate does not implement.
pub(crate) const UNSUPPORTED_SOURCES: &[&str] = &[
    "role_arn",
    "web_identity_token_file",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "credential_source",
];

pub(crate) type Section = HashMap<String, String>;

/// Static keys of a profile in the shared `credentials`/`config` files, read once and cached.
///
/// The profile is `AWS_PROFILE` (else `default`); the files are `AWS_SHARED_CREDENTIALS_FILE`
/// (else `~/.aws/credentials`) and `AWS_CONFIG_FILE` (else `~/.aws/config`). A key in the
/// credentials file wins over the same key in the config file.
pub struct ProfileCredentials {
    files: ProfileFiles,
    cached: Mutex<Option<Credentials>>,
}

impl ProfileCredentials {
    /// Profile and file locations from the process environment.
    pub fn new() -> Self {
        Self::with_lookup(&process_env())
    }
    pub(crate) fn with_lookup(env: &EnvLookup) -> Self {
        ProfileCredentials {
            files: ProfileFiles::from_env(env),
            cached: Mutex::new(None),
        }
    }
    /// Uses profile `name` instead of `AWS_PROFILE`.
    #[must_use]
    pub fn with_profile(mut self, name: impl Into<String>) -> Self {
        self.files.profile = name.into();
        self
    }
    /// Uses these files instead of the default locations.
    #[must_use]
    pub fn with_files(
        mut self,
        credentials: impl Into<PathBuf>,
        config: impl Into<PathBuf>,
    ) -> Self {
        self.files.credentials = Some(credentials.into());
        self.files.config = Some(config.into());
        self
    }
    /// The profile name in use.
    pub fn profile(&self) -> &str {
        &self.files.profile
    }

    fn load(&self) -> Result<Credentials> {
        let p = self.files.load_profile()?;
        let setting = "AWS_PROFILE";
        match (p.get("aws_access_key_id"), p.get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => {
                let mut c = Credentials::new(id, secret);
                if let Some(t) = p.get("aws_session_token") {
                    c = c.with_session_token(t);
                }
                c.check(setting)
            }
            _ => {
                let unsupported = UNSUPPORTED_SOURCES.iter().find(|k| p.contains_key(**k));
                let msg = match unsupported {
                    Some(k) => format!(
                        "profile `{}` gets its credentials through `{k}`, which this crate does not \
                         support yet; implement CredentialsProvider for it",
                        self.files.profile
                    ),
                    None => format!(
                        "profile `{}` has no aws_access_key_id/aws_secret_access_key",
                        self.files.profile
                    ),
                };
                Err(Error::configuration(setting, msg))
            }
        }
    }
}

impl Default for ProfileCredentials {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ProfileCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileCredentials")
            .field("profile", &self.files.profile)
            .field("credentials_file", &self.files.credentials)
            .field("config_file", &self.files.config)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CredentialsProvider for ProfileCredentials {
    async fn credentials(&self) -> Result<Credentials> {
        if let Some(c) = self
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(c);
        }
        let c = self.load()?;
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = Some(c.clone());
        Ok(c)
    }
}

/// Where the files are and which profile to read.
#[derive(Debug, Clone)]
pub(crate) struct ProfileFiles {
    pub(crate) profile: String,
    pub(crate) credentials: Option<PathBuf>,
    pub(crate) config: Option<PathBuf>,
}

impl ProfileFiles {
    pub(crate) fn from_env(env: &EnvLookup) -> Self {
        let home = env("HOME")
            .or_else(|| env("USERPROFILE"))
            .map(PathBuf::from);
        let under_home = |name: &str| home.as_ref().map(|h| h.join(".aws").join(name));
        ProfileFiles {
            profile: env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned()),
            credentials: env("AWS_SHARED_CREDENTIALS_FILE")
                .map(PathBuf::from)
                .or_else(|| under_home("credentials")),
            config: env("AWS_CONFIG_FILE")
                .map(PathBuf::from)
                .or_else(|| under_home("config")),
        }
    }

    /// The profile's keys: the config file's `[profile NAME]` (or `[default]`), overridden by the
    /// credentials file's `[NAME]`.
    ///
    /// # Errors
    /// [`Error::Configuration`] (`AWS_PROFILE`) when a file cannot be read or the profile is in
    /// neither file.
    pub(crate) fn load_profile(&self) -> Result<Section> {
        let mut found = false;
        let mut merged = Section::new();
        if let Some(text) = read_optional(self.config.as_deref())? {
            let sections = parse_ini(&text);
            let named = format!("profile {}", self.profile);
            let section = sections.get(&named).or_else(|| {
                (self.profile == "default")
                    .then(|| sections.get("default"))
                    .flatten()
            });
            if let Some(s) = section {
                found = true;
                merged.extend(s.clone());
            }
        }
        if let Some(text) = read_optional(self.credentials.as_deref())? {
            if let Some(s) = parse_ini(&text).get(&self.profile) {
                found = true;
                merged.extend(s.clone());
            }
        }
        if !found {
            return Err(Error::configuration(
                "AWS_PROFILE",
                format!(
                    "profile `{}` is in neither {} nor {}",
                    self.profile,
                    display(self.credentials.as_deref()),
                    display(self.config.as_deref())
                ),
            ));
        }
        Ok(merged)
    }

    /// The profile's `region`, if the config file has one.
    pub(crate) fn region(&self) -> Option<String> {
        self.load_profile().ok()?.remove("region")
    }
}

fn display(p: Option<&Path>) -> String {
    p.map_or_else(
        || "<no home directory>".to_owned(),
        |p| p.display().to_string(),
    )
}

fn read_optional(path: Option<&Path>) -> Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::configuration(
            "AWS_PROFILE",
            format!("cannot read {}: {e}", path.display()),
        )
        .with_source(e)),
    }
}

/// Parses the AWS INI dialect: `[section]`, `key = value`, `#`/`;` comment lines, indented
/// sub-property lines (skipped: nothing this crate reads is nested). Keys are lower-cased.
pub(crate) fn parse_ini(text: &str) -> HashMap<String, Section> {
    let mut out: HashMap<String, Section> = HashMap::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        if raw.starts_with([' ', '\t']) {
            continue; // continuation / nested sub-property
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.split(']').next().unwrap_or("");
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let (Some(section), Some((k, v))) = (&current, line.split_once('=')) else {
            continue;
        };
        let v = strip_inline_comment(v.trim());
        if let Some(s) = out.get_mut(section) {
            s.insert(k.trim().to_ascii_lowercase(), v.to_owned());
        }
    }
    out
}

/// `value ; comment` / `value # comment` (only after whitespace, as in the AWS CLI).
fn strip_inline_comment(v: &str) -> &str {
    let cut = v
        .char_indices()
        .find(|&(i, c)| {
            (c == '#' || c == ';') && i > 0 && v[..i].ends_with(|p: char| p.is_whitespace())
        })
        .map_or(v.len(), |(i, _)| i);
    v[..cut].trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_comments_and_nesting() {
        let ini = "# top\n[default]\nregion = eu-west-1 ; trailing\naws_access_key_id=A#B\n\
                   s3 =\n  max_concurrent_requests = 10\n[profile  dev ]\nREGION=us-east-2\n";
        let m = parse_ini(ini);
        assert_eq!(m["default"]["region"], "eu-west-1");
        assert_eq!(m["default"]["aws_access_key_id"], "A#B");
        assert!(!m["default"].contains_key("max_concurrent_requests"));
        assert_eq!(m["profile dev"]["region"], "us-east-2");
    }

    #[test]
    fn missing_profile_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = ProfileFiles {
            profile: "nope".into(),
            credentials: Some(dir.path().join("credentials")),
            config: Some(dir.path().join("config")),
        };
        let e = files.load_profile().unwrap_err();
        assert_eq!(e.field(), Some("AWS_PROFILE"));
        assert_eq!(files.region(), None);
    }

    #[test]
    fn region_from_config_profile() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "[profile dev]\nregion = ap-south-1\n").unwrap();
        let files = ProfileFiles {
            profile: "dev".into(),
            credentials: None,
            config: Some(config),
        };
        assert_eq!(files.region().as_deref(), Some("ap-south-1"));
    }
}

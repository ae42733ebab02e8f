//! Builder settings, Inngest's environment variables, and how they become a
//! [`WorkerConfig`].
//!
//! Precedence: a value set on the builder wins over the environment, which
//! wins over the default. With no signing key and no base URL the worker
//! talks to a local dev server (`connect-dev` or Inngest's own) at
//! `http://127.0.0.1:8288`, so everything runs out of the box.

use std::time::{Duration, SystemTime};

use connect_core::auth::{KeyError, SigningKey};
use connect_core::payload::FunctionConfig;
use connect_core::worker::{AppConfig, WorkerConfig};
use ureq::http::Uri;

use crate::system_attributes;

/// Inngest Cloud's API.
pub const CLOUD_API: &str = "https://api.inngest.com";
/// The dev server's API (connect-dev and Inngest's dev server).
pub const DEV_API: &str = "http://127.0.0.1:8288";

/// Why a worker could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{var}: {source}")]
    BadKey { var: &'static str, source: KeyError },
    #[error("{var} is {value:?}: expected a whole number, 0 or more")]
    BadNumber { var: &'static str, value: String },
    #[error("no signing key: set INNGEST_SIGNING_KEY (or INNGEST_DEV=1 for a local dev server)")]
    MissingKey,
    #[error("no functions registered")]
    NoFunctions,
    /// Two functions with one id: the gateway would route both triggers to one handler.
    #[error(
        "function id {id:?} is registered twice (its slug is {slug:?}); function ids must be unique in an app"
    )]
    DuplicateFunction { id: String, slug: String },
    #[error(
        "the app id is empty: Worker::builder(app_id) needs a name (function slugs are <app id>-<function id>)"
    )]
    EmptyAppId,
    /// A URL setting that could never work (retrying it forever would only hide the typo).
    #[error("{setting} is {value:?}: {why}")]
    BadUrl { setting: &'static str, value: String, why: &'static str },
    #[error("{0}")]
    Config(String),
    /// A setting out of range or contradictory (an interval of 1 ns, a zero deadline, ...).
    #[error("invalid worker configuration: {0}")]
    Invalid(#[from] connect_core::worker::ConfigError),
}

/// Every setting a user can give, shared by all adapters' builders.
#[derive(Clone, Debug, Default)]
pub struct WorkerOptions {
    pub app_id: String,
    pub app_version: Option<String>,
    pub signing_key: Option<SigningKey>,
    pub signing_key_fallback: Option<SigningKey>,
    /// Inngest environment (branch) name: `X-Inngest-Env`.
    pub env: Option<String>,
    /// Stable id of this worker process; the host name by default.
    pub instance_id: Option<String>,
    /// Most requests in flight at once on this instance (0 = unlimited).
    pub max_concurrency: Option<u32>,
    pub api_base_url: Option<String>,
    pub gateway_url: Option<String>,
    /// `Some(true)`: dev mode (no key needed). `Some(false)`: cloud (key required).
    pub dev: Option<bool>,
    /// How long shutdown waits for in-flight handlers.
    pub shutdown_timeout: Option<Duration>,
    /// Seed for jitter and ids, for replayable runs. Random by default.
    pub seed: Option<u64>,
}

impl WorkerOptions {
    pub fn new(app_id: impl Into<String>) -> Self {
        WorkerOptions { app_id: app_id.into(), ..Default::default() }
    }

    /// Fill every setting still unset from the process environment.
    pub fn fill_from_env(&mut self) -> Result<(), BuildError> {
        self.fill_from(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Fill every setting still unset from `lookup` (the environment in
    /// production, a map in tests). Variables are the Inngest SDKs' own.
    pub fn fill_from(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), BuildError> {
        let key = |var: &'static str| -> Result<Option<SigningKey>, BuildError> {
            lookup(var)
                .map(|v| SigningKey::new(v).map_err(|source| BuildError::BadKey { var, source }))
                .transpose()
        };
        if self.signing_key.is_none() {
            self.signing_key = key("INNGEST_SIGNING_KEY")?;
        }
        if self.signing_key_fallback.is_none() {
            self.signing_key_fallback = key("INNGEST_SIGNING_KEY_FALLBACK")?;
        }
        if self.env.is_none() {
            self.env = lookup("INNGEST_ENV");
        }
        if self.api_base_url.is_none() {
            self.api_base_url = lookup("INNGEST_API_BASE_URL").or_else(|| lookup("INNGEST_BASE_URL"));
        }
        if self.gateway_url.is_none() {
            self.gateway_url = lookup("INNGEST_CONNECT_GATEWAY_URL");
        }
        if self.max_concurrency.is_none()
            && let Some(v) = lookup("INNGEST_CONNECT_MAX_WORKER_CONCURRENCY")
        {
            let n = v.trim().parse().map_err(|_| BuildError::BadNumber {
                var: "INNGEST_CONNECT_MAX_WORKER_CONCURRENCY",
                value: v.clone(),
            })?;
            self.max_concurrency = Some(n);
        }
        if self.dev.is_none()
            && let Some(v) = lookup("INNGEST_DEV")
        {
            // INNGEST_DEV is "1"/"true", "0"/"false" (any case), or the dev server's URL.
            match v.trim().to_ascii_lowercase().as_str() {
                "0" | "false" => self.dev = Some(false),
                "1" | "true" => self.dev = Some(true),
                _ => {
                    let url = v.trim();
                    if parse_url(url, UrlKind::Http).is_err() {
                        return Err(BuildError::BadUrl {
                            setting: "INNGEST_DEV",
                            value: url.to_owned(),
                            why: "expected 1, 0, true, false or the dev server's http(s) URL",
                        });
                    }
                    self.dev = Some(true);
                    if self.api_base_url.is_none() {
                        self.api_base_url = Some(url.trim_end_matches('/').to_owned());
                    }
                }
            }
        }
        Ok(())
    }

    /// The API base URL these settings resolve to.
    pub fn resolved_api_base_url(&self) -> Result<String, BuildError> {
        if let Some(url) = &self.api_base_url {
            return Ok(url.trim_end_matches('/').to_owned());
        }
        match (self.dev, &self.signing_key) {
            (Some(true), _) | (None, None) => Ok(DEV_API.into()),
            (_, Some(_)) => Ok(CLOUD_API.into()),
            (Some(false), None) => Err(BuildError::MissingKey),
        }
    }

    /// Build the machine's configuration. `started_at` is the wall clock now.
    pub fn resolve(
        &self,
        functions: Vec<FunctionConfig>,
        started_at: SystemTime,
    ) -> Result<WorkerConfig, BuildError> {
        if self.app_id.trim().is_empty() {
            return Err(BuildError::EmptyAppId);
        }
        if functions.is_empty() {
            return Err(BuildError::NoFunctions);
        }
        let bad = |setting, url: &String, why| BuildError::BadUrl { setting, value: url.clone(), why };
        if let Some(url) = &self.api_base_url {
            const SETTING: &str = "the API base URL (api_base_url, INNGEST_API_BASE_URL, INNGEST_BASE_URL)";
            parse_url(url, UrlKind::Http).map_err(|why| bad(SETTING, url, why))?;
        }
        if let Some(url) = &self.gateway_url {
            const SETTING: &str = "the gateway URL (gateway_url, INNGEST_CONNECT_GATEWAY_URL)";
            let uri = parse_url(url, UrlKind::WebSocket).map_err(|why| bad(SETTING, url, why))?;
            if matches!(uri.path(), "" | "/") {
                tracing::warn!(
                    url = %url,
                    "the gateway URL has no path: Inngest's gateways (and connect-dev) serve /v0/connect"
                );
            }
        }
        if self.dev == Some(false) && self.signing_key.is_none() {
            return Err(BuildError::MissingKey);
        }
        let instance_id = self.instance_id.clone().unwrap_or_else(hostname);
        let mut config = WorkerConfig::new(self.app_id.clone(), functions, instance_id, started_at);
        config.apps = vec![AppConfig {
            app_name: self.app_id.clone(),
            app_version: self.app_version.clone(),
            functions: std::mem::take(&mut config.apps[0].functions),
        }];
        config.api_base_url = self.resolved_api_base_url()?;
        config.gateway_url_override = self.gateway_url.clone();
        config.signing_key = self.signing_key.clone();
        config.signing_key_fallback = self.signing_key_fallback.clone();
        config.env = self.env.clone();
        config.max_worker_concurrency = self.max_concurrency.filter(|n| *n > 0);
        config.system_attributes = system_attributes();
        config.sdk_language = "rust".into();
        config.sdk_version = concat!("v", env!("CARGO_PKG_VERSION")).into();
        config.framework = "connect".into();
        config.seed = self.seed.unwrap_or_else(|| random_seed(started_at));
        if let Some(t) = self.shutdown_timeout {
            config.timeouts.shutdown = t;
        }
        Ok(config)
    }
}

/// What a URL setting is for: the start and flush calls, or the gateway socket.
#[derive(Clone, Copy)]
enum UrlKind {
    Http,
    WebSocket,
}

/// `url` parsed, or why it could never work as a URL of this kind.
fn parse_url(url: &str, kind: UrlKind) -> Result<Uri, &'static str> {
    let uri: Uri = url.parse().map_err(|_| "not a URL")?;
    let (schemes, rule) = match kind {
        UrlKind::Http => (["http", "https"], "the scheme must be http:// or https://"),
        UrlKind::WebSocket => (["ws", "wss"], "the scheme must be ws:// or wss://"),
    };
    if !uri.scheme_str().is_some_and(|s| schemes.contains(&s)) {
        return Err(rule);
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("no host");
    }
    Ok(uri)
}

/// The host name, as the Inngest SDKs use for the instance id.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "connect-worker".into())
}

/// A seed from the clock and the process id: different per process, and
/// logged by the adapters so that a run can be replayed with it.
fn random_seed(now: SystemTime) -> u64 {
    let nanos = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn fill(vars: &[(&str, &str)]) -> Result<WorkerOptions, BuildError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut o = WorkerOptions::new("app");
        o.fill_from(|k| map.get(k).cloned())?;
        Ok(o)
    }

    #[test]
    fn no_key_and_no_url_means_the_local_dev_server() {
        assert_eq!(fill(&[]).expect("ok").resolved_api_base_url().expect("ok"), DEV_API);
    }

    #[test]
    fn a_signing_key_means_inngest_cloud() {
        let o = fill(&[("INNGEST_SIGNING_KEY", "signkey-prod-abcd")]).expect("ok");
        assert_eq!(o.resolved_api_base_url().expect("ok"), CLOUD_API);
    }

    #[test]
    fn inngest_dev_url_and_base_url_are_honoured() {
        let o = fill(&[("INNGEST_DEV", "http://localhost:9999/")]).expect("ok");
        assert_eq!(o.resolved_api_base_url().expect("ok"), "http://localhost:9999");
        let o = fill(&[("INNGEST_BASE_URL", "http://self-hosted:8288")]).expect("ok");
        assert_eq!(o.resolved_api_base_url().expect("ok"), "http://self-hosted:8288");
    }

    #[test]
    fn cloud_mode_without_a_key_is_an_error() {
        let o = fill(&[("INNGEST_DEV", "0")]).expect("ok");
        assert!(matches!(o.resolved_api_base_url(), Err(BuildError::MissingKey)));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let e = fill(&[("INNGEST_CONNECT_MAX_WORKER_CONCURRENCY", "lots")]).expect_err("bad");
        assert!(e.to_string().contains("INNGEST_CONNECT_MAX_WORKER_CONCURRENCY"));
        let e = fill(&[("INNGEST_SIGNING_KEY", "signkey-prod-zz")]).expect_err("bad");
        assert!(e.to_string().contains("INNGEST_SIGNING_KEY"));
        assert!(!e.to_string().contains("zz"), "the key itself is never shown: {e}");
    }

    #[test]
    fn the_builder_wins_over_the_environment() {
        let map: HashMap<&str, &str> =
            HashMap::from([("INNGEST_ENV", "from-env"), ("INNGEST_CONNECT_MAX_WORKER_CONCURRENCY", "5")]);
        let mut o = WorkerOptions::new("app");
        o.env = Some("from-builder".into());
        o.fill_from(|k| map.get(k).map(|v| v.to_string())).expect("ok");
        assert_eq!(o.env.as_deref(), Some("from-builder"));
        assert_eq!(o.max_concurrency, Some(5));
    }

    #[test]
    fn inngest_dev_is_a_flag_in_any_case_or_an_http_url() {
        assert_eq!(fill(&[("INNGEST_DEV", "TRUE")]).expect("flag").dev, Some(true));
        assert_eq!(fill(&[("INNGEST_DEV", "False")]).expect("flag").dev, Some(false));
        let o = fill(&[("INNGEST_DEV", "http://127.0.0.1:9999/")]).expect("url");
        assert_eq!((o.dev, o.api_base_url.as_deref()), (Some(true), Some("http://127.0.0.1:9999")));
        let e = fill(&[("INNGEST_DEV", "yes")]).expect_err("neither");
        assert!(e.to_string().starts_with("INNGEST_DEV is \"yes\": expected 1, 0, true, false"), "{e}");
    }
}

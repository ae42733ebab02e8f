//! What every adapter's builder takes, and the one way it becomes a running
//! session. An adapter's `Builder` holds a [`Settings`] in a field named
//! `settings`, adds its handler registration and runtime knobs, and gets the
//! common setters from [`builder_settings!`](crate::builder_settings).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use connect_core::auth::SigningKey;
use connect_core::worker::WorkerConfig;

use crate::supervisor::{self, Exit, Health, SupervisorConfig};
use crate::{BuildError, Function, WorkerOptions};

/// A last adjustment of the machine's configuration (timeouts, limits, backoff).
pub type Configure = Box<dyn FnOnce(&mut WorkerConfig) + Send>;

/// The settings shared by every adapter's builder.
pub struct Settings {
    pub options: WorkerOptions,
    /// The first bad setting; reported by `connect()`.
    pub error: Option<BuildError>,
    pub handle_signals: bool,
    pub supervisor: SupervisorConfig,
    pub configure: Option<Configure>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("options", &self.options)
            .field("handle_signals", &self.handle_signals)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn new(app_id: impl Into<String>) -> Self {
        Settings {
            options: WorkerOptions::new(app_id),
            error: None,
            handle_signals: true,
            supervisor: SupervisorConfig::default(),
            configure: None,
        }
    }

    /// Parse a signing key given to the builder; a bad one is kept as the
    /// error `connect()` returns (builders chain, so they cannot fail here).
    pub fn key(&mut self, raw: &str, var: &'static str) -> Option<SigningKey> {
        match SigningKey::new(raw) {
            Ok(k) => Some(k),
            Err(source) => {
                self.error.get_or_insert(BuildError::BadKey { var, source });
                None
            }
        }
    }

    /// The machine's configuration and the handlers by slug: builder values,
    /// then Inngest's environment variables, then defaults.
    pub fn resolve<H>(
        &mut self,
        functions: Vec<(Function, H)>,
    ) -> Result<(WorkerConfig, HashMap<String, H>), BuildError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.options.fill_from_env()?;
        let app_id = self.options.app_id.clone();
        let mut handlers = HashMap::new();
        let mut configs = Vec::new();
        for (function, handler) in functions {
            let slug = function.slug(&app_id);
            if handlers.contains_key(&slug) {
                return Err(BuildError::DuplicateFunction { id: function.id().to_owned(), slug });
            }
            configs.push(function.config(&app_id));
            handlers.insert(slug, handler);
        }
        let mut config = self.options.resolve(configs, SystemTime::now())?;
        if let Some(f) = self.configure.take() {
            f(&mut config);
        }
        config.validate()?;
        Ok((config, handlers))
    }

    /// The span every log record of this worker is recorded in.
    pub fn span(&self, config: &WorkerConfig) -> tracing::Span {
        tracing::info_span!("connect", app = %self.options.app_id, instance = %config.instance_id)
    }

    /// Start the supervised connection thread, named `connect-<app>`, inside
    /// the caller's tracing dispatcher. `on_give_up` records the fatal error
    /// when the crashes never stop.
    pub fn start_supervised<C, F, G>(
        &self,
        config: &WorkerConfig,
        health: Arc<Health>,
        carry: C,
        body: F,
        on_give_up: G,
    ) -> Result<(), BuildError>
    where
        C: Send + 'static,
        F: Fn(C) -> Exit<C> + Send + Sync + 'static,
        G: FnOnce(String) + Send + 'static,
    {
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let mut sup = self.supervisor.clone();
        sup.seed = config.seed;
        supervisor::spawn(
            format!("connect-{}", self.options.app_id),
            sup,
            carry,
            health,
            dispatch,
            body,
            on_give_up,
        )
        .map(drop)
        .map_err(|e| BuildError::Config(format!("could not start the connection thread: {e}")))
    }
}

/// The builder setters every adapter shares, for a `Builder` with a
/// `settings: Settings` field. Expands to methods, inside an `impl` block.
#[macro_export]
macro_rules! builder_settings {
    () => {
        /// The signing key (`signkey-<env>-<hex>`), as in the Inngest
        /// dashboard. Only its hash is sent; neither is ever logged or shown
        /// by `Debug`. A malformed key is reported by `connect()`. Without a
        /// key the worker is in dev mode (`INNGEST_SIGNING_KEY`).
        pub fn signing_key(mut self, key: &str) -> Self {
            self.settings.options.signing_key = self.settings.key(key, "signing_key");
            self
        }

        /// The key to try after the start call answers 401 with the signing
        /// key, for rotation (`INNGEST_SIGNING_KEY_FALLBACK`).
        pub fn signing_key_fallback(mut self, key: &str) -> Self {
            self.settings.options.signing_key_fallback = self.settings.key(key, "signing_key_fallback");
            self
        }

        /// Inngest environment (branch) name.
        pub fn env(mut self, env: impl Into<String>) -> Self {
            self.settings.options.env = Some(env.into());
            self
        }

        /// The app's version, sent with its functions; the gateway routes new
        /// work to the newest version connected.
        pub fn app_version(mut self, version: impl Into<String>) -> Self {
            self.settings.options.app_version = Some(version.into());
            self
        }

        /// Stable id of this worker process (default: the host name).
        pub fn instance_id(mut self, id: impl Into<String>) -> Self {
            self.settings.options.instance_id = Some(id.into());
            self
        }

        /// Most requests in flight at once on this instance (0 = unlimited).
        pub fn max_concurrency(mut self, n: u32) -> Self {
            self.settings.options.max_concurrency = Some(n);
            self
        }

        /// Inngest's API: `https://api.inngest.com`, a self-hosted server, or a dev server.
        pub fn api_base_url(mut self, url: impl Into<String>) -> Self {
            self.settings.options.api_base_url = Some(url.into());
            self
        }

        /// Dial this gateway instead of the endpoint the start call names.
        pub fn gateway_url(mut self, url: impl Into<String>) -> Self {
            self.settings.options.gateway_url = Some(url.into());
            self
        }

        /// Dev mode: no signing key needed, local API by default.
        pub fn dev(mut self, dev: bool) -> Self {
            self.settings.options.dev = Some(dev);
            self
        }

        /// How long a graceful shutdown waits for in-flight handlers.
        pub fn shutdown_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.settings.options.shutdown_timeout = Some(timeout);
            self
        }

        /// Seed for jitter and ids, to replay a run exactly.
        pub fn seed(mut self, seed: u64) -> Self {
            self.settings.options.seed = Some(seed);
            self
        }

        /// Shut down gracefully on SIGINT and SIGTERM (default: on).
        pub fn handle_signals(mut self, on: bool) -> Self {
            self.settings.handle_signals = on;
            self
        }

        /// Crashes of the connection thread in a row before the worker gives up.
        pub fn max_consecutive_crashes(mut self, n: u32) -> Self {
            self.settings.supervisor.max_consecutive_crashes = n;
            self
        }

        /// Adjust the machine's configuration directly (timeouts, limits, backoff).
        pub fn configure(
            mut self,
            f: impl FnOnce(&mut $crate::connect_core::worker::WorkerConfig) + Send + 'static,
        ) -> Self {
            self.settings.configure = Some(Box::new(f));
            self
        }
    };
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use connect_core::worker::ConfigError;

    use super::*;

    fn resolve(settings: &mut Settings) -> Result<WorkerConfig, BuildError> {
        settings.options.dev = Some(true);
        let functions = vec![(Function::new("f").on_event("app/e"), ())];
        settings.resolve(functions).map(|(config, _)| config)
    }

    /// A deadline or interval that makes no sense is an error when the worker
    /// is built, naming the setting, not a fatal error once it runs.
    #[test]
    fn out_of_range_intervals_and_timeouts_are_a_build_error() {
        let mut s = Settings::new("app");
        s.options.shutdown_timeout = Some(Duration::from_secs(3 * 3600));
        let e = resolve(&mut s).expect_err("refused");
        assert!(
            matches!(e, BuildError::Invalid(ConfigError::OutOfRange { what: "timeouts.shutdown", .. })),
            "{e}"
        );
        assert!(
            e.to_string().starts_with("invalid worker configuration: timeouts.shutdown is 3h0m0s"),
            "{e}"
        );

        let mut s = Settings::new("app");
        s.configure = Some(Box::new(|c| c.intervals.heartbeat = Duration::from_nanos(1)));
        let e = resolve(&mut s).expect_err("refused");
        assert!(e.to_string().contains("intervals.heartbeat is 1ns"), "{e}");

        let mut s = Settings::new("app");
        s.options.shutdown_timeout = Some(Duration::from_secs(5));
        assert_eq!(resolve(&mut s).expect("fine").timeouts.shutdown, Duration::from_secs(5));
    }

    /// Two functions with one id would make one of them unreachable (the
    /// handler map keeps one; the gateway routes both triggers to it).
    #[test]
    fn a_function_id_registered_twice_is_a_build_error() {
        let mut s = Settings::new("app");
        s.options.dev = Some(true);
        let functions =
            vec![(Function::new("f").on_event("e/one"), 1), (Function::new("f").on_event("e/two"), 2)];
        let e = s.resolve(functions).map(|_| ()).expect_err("refused");
        assert!(
            matches!(&e, BuildError::DuplicateFunction { id, slug } if id == "f" && slug == "app-f"),
            "{e}"
        );

        let mut s = Settings::new("app");
        s.options.dev = Some(true);
        let functions = vec![(Function::new("f"), 1), (Function::new("g"), 2)];
        let (_, handlers) = s.resolve(functions).expect("distinct ids");
        assert_eq!((handlers["app-f"], handlers["app-g"]), (1, 2));
    }

    #[test]
    fn an_empty_app_id_is_a_build_error() {
        let e = resolve(&mut Settings::new(" ")).expect_err("refused");
        assert!(matches!(e, BuildError::EmptyAppId), "{e}");
    }

    /// A URL that can never work is refused when the worker is built, naming
    /// the setting; before, the worker retried it forever.
    #[test]
    fn urls_that_cannot_work_are_a_build_error() {
        for (api, gateway, wants) in [
            (Some("yes"), None, "API base URL"),
            (Some("ws://127.0.0.1:8288"), None, "http:// or https://"),
            (Some("http://"), None, "API base URL"),
            (None, Some("foo"), "gateway URL"),
            (None, Some("http://127.0.0.1:8289/v0/connect"), "ws:// or wss://"),
        ] {
            let mut s = Settings::new("app");
            s.options.api_base_url = api.map(str::to_owned);
            s.options.gateway_url = gateway.map(str::to_owned);
            let e = resolve(&mut s).expect_err("refused");
            assert!(matches!(e, BuildError::BadUrl { .. }) && e.to_string().contains(wants), "{e}");
        }
        let mut s = Settings::new("app");
        s.options.api_base_url = Some("https://inngest.internal:8288/".into());
        s.options.gateway_url = Some("wss://gw.internal/v0/connect".into());
        let config = resolve(&mut s).expect("good URLs");
        assert_eq!(config.api_base_url, "https://inngest.internal:8288");
    }
}

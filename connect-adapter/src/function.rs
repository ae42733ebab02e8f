//! What a user registers: a function's id, name, triggers and retries.

use connect_core::payload::{FunctionConfig, Trigger};

/// A function definition, independent of its handler and of the runtime.
///
/// The slug sent to Inngest is `<app id>-<id>`, the convention the Inngest
/// SDKs follow, so two apps may both have a function called `hello`.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    id: String,
    name: Option<String>,
    triggers: Vec<Trigger>,
    retries: Option<u32>,
}

impl Function {
    pub fn new(id: impl Into<String>) -> Self {
        Function { id: id.into(), name: None, triggers: Vec::new(), retries: None }
    }

    /// The display name; the id when unset.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Run on every event with this name.
    pub fn on_event(self, event: impl Into<String>) -> Self {
        self.trigger(Trigger::event(event))
    }

    /// Run on a cron schedule (executed by Inngest; connect-dev ignores cron).
    pub fn on_cron(self, spec: impl Into<String>) -> Self {
        self.trigger(Trigger::cron(spec))
    }

    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.triggers.push(trigger);
        self
    }

    /// Attempts after the first failure (Inngest's default is 3).
    pub fn retries(mut self, attempts: u32) -> Self {
        self.retries = Some(attempts);
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The slug under which the gateway will invoke this function.
    pub fn slug(&self, app_id: &str) -> String {
        format!("{app_id}-{}", self.id)
    }

    /// The registration sent in WORKER_CONNECT.
    pub fn config(&self, app_id: &str) -> FunctionConfig {
        let name = self.name.clone().unwrap_or_else(|| self.id.clone());
        let mut triggers = self.triggers.iter().cloned();
        let first = triggers.next().unwrap_or_else(|| Trigger::event(format!("{app_id}/{}", self.id)));
        let mut config = FunctionConfig::new(self.slug(app_id), name, first);
        config.triggers.extend(triggers);
        if let Some(r) = self.retries {
            config = config.with_retries(r);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_is_app_dash_id_and_the_step_url_routes_to_it() {
        let f = Function::new("hello").name("Hello").on_event("demo/hello").on_cron("0 * * * *").retries(1);
        let c = f.config("shop");
        assert_eq!(c.id, "shop-hello");
        assert_eq!(c.routed_slug().as_deref(), Some("shop-hello"));
        assert_eq!(c.name, "Hello");
        assert_eq!(c.triggers.len(), 2);
        assert_eq!(c.retries(), Some(1));
    }
}

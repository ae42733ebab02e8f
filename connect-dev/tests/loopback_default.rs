//! connect-dev binds loopback by default: the binary's defaults
//! (`DevConfig::default`, which `main.rs` starts from) and the test/example
//! config, and a spawned server's real addresses. Reaching it from elsewhere
//! takes an explicit `--api-listen` / `--gateway-listen`.

use connect_dev::{DevConfig, DevServer};

#[test]
fn the_default_listeners_are_loopback_only() {
    for (name, c) in [("default", DevConfig::default()), ("ephemeral", DevConfig::ephemeral())] {
        assert!(c.api_listen.ip().is_loopback(), "{name}: API on {}", c.api_listen);
        assert!(c.gateway_listen.ip().is_loopback(), "{name}: gateway on {}", c.gateway_listen);
    }
    let dev = DevServer::spawn(DevConfig::ephemeral()).expect("dev");
    assert!(dev.api_addr().ip().is_loopback() && dev.gateway_addr().ip().is_loopback());
    assert!(dev.gateway_url().starts_with("ws://127.0.0.1:"), "{}", dev.gateway_url());
}

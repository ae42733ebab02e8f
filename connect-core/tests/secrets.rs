//! Signing keys (raw and hashed) never appear in `Debug` output of anything
//! that holds them: the key types, the config, the machine, and the outputs
//! that carry the `Authorization` header (start and flush calls).

use connect_core::auth::SigningKey;
use connect_core::fuzz::worker_sim::config;
use connect_core::worker::{Durable, Output, Worker};

const RAW: &str = "signkey-test-8ee2262a15e8d3b3a7e8c3f5f4f0cd7ad2fe0d4a6b1b0d47a3e2e6f3a9c1d001";
const FALLBACK: &str = "signkey-test-00aa11bb22cc33dd44ee55ff66007788998877665544332211000011aabbccdd";

/// The secret parts of a key, raw and hashed (the `signkey-<env>-` prefix is not secret).
fn secrets(key: &SigningKey) -> Vec<String> {
    let strip = |s: &str| s.strip_prefix(key.prefix()).unwrap_or(s).to_owned();
    vec![strip(key.expose_raw()), strip(key.hashed().expose())]
}

fn assert_hidden(what: &str, text: &str, keys: &[&SigningKey]) {
    for key in keys {
        for secret in secrets(key) {
            assert!(!text.contains(&secret), "{what} shows a signing key secret: {text}");
        }
    }
}

#[test]
fn keys_are_not_in_debug_or_display() {
    let key = SigningKey::new(RAW).expect("key");
    assert_hidden("SigningKey Debug", &format!("{key:?} {key:#?}"), &[&key]);
    assert_hidden("HashedKey Debug", &format!("{:?}", key.hashed()), &[&key]);
}

#[test]
fn the_config_the_machine_and_its_http_outputs_do_not_show_keys() {
    let (key, fallback) = (SigningKey::new(RAW).expect("key"), SigningKey::new(FALLBACK).expect("key"));
    let mut c = config();
    c.signing_key = Some(key.clone());
    c.signing_key_fallback = Some(fallback.clone());
    assert_hidden("WorkerConfig Debug", &format!("{c:?} {c:#?}"), &[&key, &fallback]);
    let mut w = Worker::new(c, Durable::default(), std::time::Instant::now()).expect("worker");
    assert_hidden("Worker Debug", &format!("{w:?}"), &[&key, &fallback]);
    let mut saw_http = false;
    while let Some(out) = w.poll_output() {
        if let Output::Http { request, .. } = &out {
            saw_http = true;
            // The header itself must carry the hashed key, or the start call could not authenticate.
            let auth = request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization"));
            assert_eq!(auth.map(|(_, v)| v.as_str()), Some(key.hashed().bearer().as_str()));
        }
        assert_hidden("Output Debug", &format!("{out:?} {out:#?}"), &[&key, &fallback]);
    }
    assert!(saw_http, "the machine starts with a start call");
}

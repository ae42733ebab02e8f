//! The gateway's settings.

use std::time::Duration;

use crate::auth::HashedKey;
use crate::duration::format_go_duration as go;
use crate::wire::GATEWAY_READ_LIMIT;
use crate::worker::{MAX_INTERVAL, MAX_PHASE, MIN_TIMER};

/// Gateway settings. Defaults are Inngest's (PROTOCOL.md section 4.1).
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Sent in READY; also the heartbeat-check tick. Default 10 s.
    pub heartbeat_interval: Duration,
    /// Sent in READY. Default 30 s.
    pub extend_lease_interval: Duration,
    /// Sent in READY; zero disables WORKER_STATUS. Default 0.
    pub status_interval: Duration,
    /// How long a lease (and each extension) lasts. `None`: 4 x `extend_lease_interval` (2 min by default).
    pub lease_duration: Option<Duration>,
    /// How long after expiry a lease is given up. `None`: `extend_lease_interval` / 6 (5 s by default).
    pub lease_grace: Option<Duration>,
    /// WORKER_CONNECT must arrive this soon after HELLO. Default 5 s.
    pub hello_timeout: Duration,
    /// After GATEWAY_CLOSING, how long a worker has to close. Default 25 s.
    pub drain_timeout: Duration,
    /// Close after this many heartbeat intervals without one. Default 5.
    pub heartbeat_misses: u32,
    /// Default 10.
    pub apps_per_connection: usize,
    /// The WebSocket read limit. Default 8 MiB.
    pub max_frame: usize,
    /// With a key, start and flush calls must bring its hashed form as a bearer token (401 otherwise).
    pub signing_key: Option<HashedKey>,
    /// HMAC secret of session tokens.
    pub token_secret: Vec<u8>,
    /// Default 5 min.
    pub token_lifetime: Duration,
    /// Name of the first gateway group; a drain moves new sockets to `<name>-2`, `<name>-3`, ...
    pub group_name: String,
    /// Seeds lease ids and tokens' neighbours, so a simulation replays exactly.
    pub seed: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            heartbeat_interval: Duration::from_secs(10),
            extend_lease_interval: Duration::from_secs(30),
            status_interval: Duration::ZERO,
            lease_duration: None,
            lease_grace: None,
            hello_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(25),
            heartbeat_misses: 5,
            apps_per_connection: 10,
            max_frame: GATEWAY_READ_LIMIT,
            signing_key: None,
            token_secret: b"this-does-not-need-to-be-secret".to_vec(),
            token_lifetime: Duration::from_secs(300),
            group_name: "gw-dev".into(),
            seed: 0,
        }
    }
}

impl GatewayConfig {
    /// Intervals and deadlines within a range that makes sense, the same as a
    /// worker accepts: a heartbeat interval of 1 ns would make every worker
    /// (and the gateway's own check) spin; one of an hour would leave a dead
    /// worker routable for hours. A lease must outlast one extension interval,
    /// or every lease expires before it can be extended. [`Gateway::new`]
    /// does not check (simulations may use anything): a server built from
    /// user input calls this first.
    ///
    /// [`Gateway::new`]: super::Gateway::new
    pub fn validate(&self) -> Result<(), GatewayConfigError> {
        let range = |what, value: Duration, min, max| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(GatewayConfigError::OutOfRange { what, value, min, max })
            }
        };
        range("heartbeat_interval", self.heartbeat_interval, MIN_TIMER, MAX_INTERVAL)?;
        range("extend_lease_interval", self.extend_lease_interval, MIN_TIMER, MAX_INTERVAL)?;
        range("hello_timeout", self.hello_timeout, MIN_TIMER, MAX_PHASE)?;
        range("drain_timeout", self.drain_timeout, Duration::ZERO, MAX_PHASE)?;
        if self.lease_duration() <= self.extend_lease_interval {
            return Err(GatewayConfigError::LeaseTooShort {
                lease: self.lease_duration(),
                extend: self.extend_lease_interval,
            });
        }
        if self.heartbeat_misses == 0 {
            return Err(GatewayConfigError::ZeroHeartbeatMisses);
        }
        Ok(())
    }

    pub fn lease_duration(&self) -> Duration {
        self.lease_duration.unwrap_or(self.extend_lease_interval * 4)
    }
    pub fn lease_grace(&self) -> Duration {
        self.lease_grace.unwrap_or(self.extend_lease_interval / 6)
    }
}

/// A gateway setting that cannot work; `what` is the field's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GatewayConfigError {
    #[error("{what} is {}: it must be between {} and {}", go(*.value), go(*.min), go(*.max))]
    OutOfRange { what: &'static str, value: Duration, min: Duration, max: Duration },
    #[error("lease_duration ({}) must be longer than extend_lease_interval ({})", go(*.lease), go(*.extend))]
    LeaseTooShort { lease: Duration, extend: Duration },
    #[error("heartbeat_misses must be at least 1")]
    ZeroHeartbeatMisses,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_nonsense_is_refused_naming_the_field() {
        assert_eq!(GatewayConfig::default().validate(), Ok(()));
        let e = GatewayConfig { heartbeat_interval: Duration::from_nanos(1), ..GatewayConfig::default() }
            .validate()
            .expect_err("1ns");
        assert_eq!(e.to_string(), "heartbeat_interval is 1ns: it must be between 10ms and 5m0s");
        let e =
            GatewayConfig { extend_lease_interval: Duration::from_secs(3600), ..GatewayConfig::default() }
                .validate()
                .expect_err("an hour");
        assert!(matches!(e, GatewayConfigError::OutOfRange { what: "extend_lease_interval", .. }), "{e}");
        let e = GatewayConfig { lease_duration: Some(Duration::from_secs(30)), ..GatewayConfig::default() }
            .validate()
            .expect_err("a lease no longer than one extension interval");
        assert!(matches!(e, GatewayConfigError::LeaseTooShort { .. }), "{e}");
        let ok = GatewayConfig {
            heartbeat_interval: Duration::from_millis(10),
            drain_timeout: Duration::ZERO,
            ..GatewayConfig::default()
        };
        assert_eq!(ok.validate(), Ok(()));
    }
}

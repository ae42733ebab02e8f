//! The gateway's settings.

use std::time::Duration;

use crate::auth::HashedKey;
use crate::wire::GATEWAY_READ_LIMIT;

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
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration.unwrap_or(self.extend_lease_interval * 4)
    }
    pub fn lease_grace(&self) -> Duration {
        self.lease_grace.unwrap_or(self.extend_lease_interval / 6)
    }
}

//! Request leases: who holds a forwarded request, and until when.
//!
//! Inngest's executor leases a request before forwarding it; the lease id is
//! a ULID whose timestamp is the lease's expiry, so anyone holding the id
//! knows when it runs out. Extensions name the current id and get a new one.
//! Leases are keyed by request id, not by socket: a worker may extend over a
//! newer connection of the same instance.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ulid::Ulid;

use super::ConnId;
use super::timers::TimerHandle;

#[derive(Debug)]
pub struct Lease {
    /// The socket the request was forwarded on (where its ack must arrive).
    pub conn: ConnId,
    pub instance_id: String,
    pub current: String,
    /// The id the last extension replaced: re-sending it (the ack was lost)
    /// gets the current id back instead of a NACK, as Inngest's lease script does.
    pub previous: Option<String>,
    pub expires: Instant,
    /// Fires at `expires` + grace.
    pub timer: TimerHandle,
    pub acked: bool,
}

/// What an extension request gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Extension {
    /// A fresh lease: `new_lease_id` in the ack.
    Extended(String),
    /// The id named was the previous one: answer with the current id, unchanged.
    Replayed(String),
    /// No live lease with that id for that instance: `new_lease_id` absent.
    Nack,
}

/// A lease id for a lease ending at `expires_wall`.
pub fn lease_id(expires_wall: SystemTime, random: u128) -> String {
    let ms = expires_wall.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Ulid::from_parts(ms, random).to_string()
}

/// The expiry a lease id encodes, if it is a ULID.
pub fn lease_expiry(id: &str) -> Option<SystemTime> {
    let ulid = Ulid::from_string(id).ok()?;
    Some(UNIX_EPOCH + std::time::Duration::from_millis(ulid.timestamp_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lease_id_encodes_its_expiry_to_the_millisecond() {
        let t = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let id = lease_id(t, 42);
        assert_eq!(id.len(), 26);
        assert_eq!(lease_expiry(&id), Some(t));
        assert_eq!(lease_expiry("not-a-ulid"), None);
    }
}

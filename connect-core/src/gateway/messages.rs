//! The gateway's handling of each worker message once the handshake is done.

use std::time::Instant;

use super::lease::{self, Extension};
use super::{ConnId, Event, Gateway, Output, Phase, Timer};
use crate::wire::{
    Message, SdkResponse, WorkerReplyAckData, WorkerRequestExtendLeaseAckData, WorkerRequestExtendLeaseData,
};

impl Gateway {
    pub(super) fn on_heartbeat(&mut self, now: Instant, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        let gap = conn.heartbeat(now);
        let answer = conn.phase.answers_heartbeats();
        self.out.push_back(Output::Event(Event::Heartbeat { conn: id, gap }));
        if answer {
            self.send(id, &Message::GatewayHeartbeat);
        }
    }

    pub(super) fn on_worker_ready(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        match conn.phase {
            Phase::AwaitingReady => {
                conn.phase = Phase::Ready;
                self.out.push_back(Output::Event(Event::Ready { conn: id }));
            }
            Phase::Draining => self.close(id, 1001, "connect_gateway_closing", Some("GATEWAY_DRAINING")),
            _ => {} // already routable, or paused: Inngest ignores it.
        }
    }

    pub(super) fn on_pause(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        if matches!(conn.phase, Phase::Ready | Phase::AwaitingReady) {
            conn.phase = Phase::Paused;
        }
        let released = self.release_pending(id);
        self.out.push_back(Output::Event(Event::Paused { conn: id, released }));
    }

    pub(super) fn on_ack(&mut self, id: ConnId, request_id: String) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        // An ack on another socket than the one that delivered the request is ignored.
        if !conn.pending_acks.remove(&request_id) {
            return;
        }
        if let Some(lease) = self.leases.get_mut(&request_id) {
            lease.acked = true;
        }
        self.out.push_back(Output::Event(Event::RequestAcked { conn: id, request_id }));
    }

    pub(super) fn on_extend(&mut self, now: Instant, id: ConnId, ext: WorkerRequestExtendLeaseData) {
        if lease::lease_expiry(&ext.lease_id).is_none() {
            return self.close(id, 1008, "connect_worker_request_extend_lease_invalid_payload", None);
        }
        let Some(conn) = self.conns.get(&id) else { return };
        let can_answer = matches!(conn.phase, Phase::Ready | Phase::Paused | Phase::Draining);
        let outcome = self.extend(now, &conn.instance_id.clone(), &ext.request_id, &ext.lease_id);
        let new_lease_id = match &outcome {
            Extension::Extended(l) | Extension::Replayed(l) => Some(l.clone()),
            Extension::Nack => None,
        };
        let event = match outcome {
            Extension::Extended(lease_id) => {
                Some(Event::LeaseExtended { conn: id, request_id: ext.request_id.clone(), lease_id })
            }
            Extension::Replayed(_) => None,
            Extension::Nack => Some(Event::LeaseNacked { conn: id, request_id: ext.request_id.clone() }),
        };
        self.out.extend(event.map(Output::Event));
        if can_answer {
            let ack = WorkerRequestExtendLeaseAckData {
                request_id: ext.request_id,
                account_id: ext.account_id,
                env_id: ext.env_id,
                app_id: ext.app_id,
                function_slug: ext.function_slug,
                new_lease_id,
            };
            self.send(id, &Message::WorkerRequestExtendLeaseAck(Box::new(ack)));
        }
    }

    fn extend(&mut self, now: Instant, instance_id: &str, request_id: &str, lease_id: &str) -> Extension {
        let Some(lease) = self.leases.get_mut(request_id) else { return Extension::Nack };
        if lease.instance_id != instance_id || lease.expires <= now {
            return Extension::Nack;
        }
        if lease.previous.as_deref() == Some(lease_id) {
            return Extension::Replayed(lease.current.clone());
        }
        if lease.current != lease_id {
            return Extension::Nack;
        }
        let expires = now + self.config.lease_duration();
        let wall = self.anchor.1 + expires.saturating_duration_since(self.anchor.0);
        let new_id = lease::lease_id(wall, self.rng.u128(..));
        lease.previous = Some(std::mem::replace(&mut lease.current, new_id.clone()));
        lease.expires = expires;
        self.timers.cancel(Some(lease.timer));
        lease.timer = self.timers.schedule(
            expires + self.config.lease_grace(),
            Timer::Lease { request_id: request_id.to_owned() },
        );
        Extension::Extended(new_id)
    }

    pub(super) fn on_reply(&mut self, id: ConnId, response: Box<SdkResponse>) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.pending_acks.remove(&response.request_id);
        let can_ack = conn.phase != Phase::AwaitingReady;
        self.finish_lease(&response.request_id);
        let ack = can_ack.then(|| WorkerReplyAckData { request_id: response.request_id.clone() });
        self.out.push_back(Output::Event(Event::Replied { conn: Some(id), response }));
        if let Some(ack) = ack {
            self.send(id, &Message::WorkerReplyAck(ack));
        }
    }
}

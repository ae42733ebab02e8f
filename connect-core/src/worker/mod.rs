//! The worker side of the protocol (being built).

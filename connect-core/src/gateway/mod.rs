//! The gateway side of the protocol (being built).

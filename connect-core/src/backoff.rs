//! Capped exponential backoff with seeded jitter (being built).

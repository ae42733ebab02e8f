//! Capped exponential backoff with seeded full jitter.
//!
//! One type serves every "try again later" in the project: the worker's
//! reconnect loop, its HTTP flush retries, and the adapters' supervisor that
//! respawns a crashed connection thread (first restart immediate, then
//! doubling to a cap). Jitter comes from a seed so that a run can be replayed.
//!
//! The ceiling for attempt `n` (counted from 0) is
//! `min(max, initial * multiplier^n)`; with `jitter` the delay is drawn
//! uniformly from `[0, ceiling]` ("full jitter"), which spreads a fleet of
//! workers that lost the same gateway at the same moment. With the default
//! config the ceilings are 1 s, 2 s, 4 s, 8 s, ... 256 s, then 300 s: close to
//! Inngest's table (1 s, 2 s, 5 s, 10 s, 20 s, 30 s, 1 m, 2 m, 5 m).

use std::time::Duration;

/// How delays grow. Public fields; [`BackoffConfig::default`] is the reconnect policy.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffConfig {
    /// Ceiling of the first delay.
    pub initial: Duration,
    /// No delay is ever longer than this.
    pub max: Duration,
    /// Growth factor between attempts (values below 1 are treated as 1).
    pub multiplier: f64,
    /// Full jitter: draw each delay from `[0, ceiling]` instead of using the ceiling.
    pub jitter: bool,
    /// A connection that stayed up this long counts as stable: the next failure
    /// starts again from the first delay. Used by the callers, which know when
    /// things went well; [`Backoff`] itself only offers [`Backoff::reset`].
    pub reset_after: Duration,
    /// Make the first delay (after creation or a reset) zero. The supervisor
    /// uses this: the first respawn is immediate.
    pub immediate_first: bool,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            multiplier: 2.0,
            jitter: true,
            reset_after: Duration::from_secs(30),
            immediate_first: false,
        }
    }
}

impl BackoffConfig {
    /// The ceiling for attempt `n` (0-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(attempt.min(1024) as i32);
        let secs = self.initial.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs).min(self.max)
        }
    }

    /// The delay for attempt `n` with jitter drawn from `rng`.
    pub(crate) fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        if !self.jitter || ceiling.is_zero() {
            return ceiling;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.u64(0..=nanos))
    }
}

/// A sequence of delays. `next_delay` advances it, `reset` starts over.
#[derive(Clone, Debug)]
pub struct Backoff {
    config: BackoffConfig,
    rng: fastrand::Rng,
    attempt: u32,
    /// True right after creation or a reset, when `immediate_first` applies.
    fresh: bool,
}

impl Backoff {
    pub fn new(config: BackoffConfig, seed: u64) -> Self {
        Backoff { config, rng: fastrand::Rng::with_seed(seed), attempt: 0, fresh: true }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        if std::mem::take(&mut self.fresh) && self.config.immediate_first {
            return Duration::ZERO;
        }
        let delay = self.config.delay(self.attempt, &mut self.rng);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Start over from the first delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.fresh = true;
    }

    /// Failures since the last reset (the immediate first one not counted).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_to_the_cap() {
        let c = BackoffConfig::default();
        let got: Vec<u64> = (0..11).map(|n| c.ceiling(n).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(c.ceiling(u32::MAX), c.max);
    }

    #[test]
    fn jittered_delays_stay_under_the_ceiling_and_replay_from_the_seed() {
        let mut a = Backoff::new(BackoffConfig::default(), 7);
        let mut b = Backoff::new(BackoffConfig::default(), 7);
        for n in 0..20 {
            let d = a.next_delay();
            assert!(d <= BackoffConfig::default().ceiling(n));
            assert_eq!(d, b.next_delay());
        }
    }

    #[test]
    fn immediate_first_then_growth_and_reset() {
        let config = BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter: false,
            immediate_first: true,
            ..BackoffConfig::default()
        };
        let mut b = Backoff::new(config, 1);
        let ms: Vec<u128> = (0..9).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [0, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::ZERO);
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }
}

//! Collecting ahead of the scrape (`--collect-ahead`): the exporter learns when scrapes come
//! and collects shortly before the next one would find the cache stale, so that scrape is
//! answered at once from a collection a moment old, and the cluster sees one collection per
//! window, evenly spaced. After some windows without a scrape it stops, and the next scrape
//! collects as without this setting.
//!
//! This file only plans (when scrapes come, when to start); the exporter runs the plan.

use std::time::{Duration, Instant};

/// When scrapes came, as far as planning the next collection needs.
#[derive(Debug, Default)]
pub struct Scrapes {
    /// The last scrape that opened a window (came when the cache was at least half a
    /// window old); a second Prometheus in the same window does not count.
    opened: Option<Instant>,
    /// The time between the last two window-opening scrapes.
    interval: Option<Duration>,
    /// The last scrape of all.
    last: Option<Instant>,
}

impl Scrapes {
    /// The time between the last two window-opening scrapes, once known.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Notes a scrape at `now` with the cache `window` long.
    pub fn record(&mut self, now: Instant, window: Duration) {
        self.last = Some(now);
        match self.opened {
            Some(opened) if now.duration_since(opened) < window / 2 => {}
            Some(opened) => {
                self.interval = Some(now.duration_since(opened));
                self.opened = Some(now);
            }
            None => self.opened = Some(now),
        }
    }

    /// When to start the next collection: `lead` before the first expected scrape that would
    /// find the collection finished at `finished` stale. `None` without a learned interval, or
    /// when no scrape came for `idle_windows` intervals.
    pub fn next_start(
        &self,
        now: Instant,
        finished: Instant,
        window: Duration,
        lead: Duration,
        idle_windows: u32,
    ) -> Option<Instant> {
        let (opened, interval, last) = (self.opened?, self.interval?, self.last?);
        if interval.is_zero() || now.duration_since(last) > interval * idle_windows {
            return None;
        }
        let stale = finished + window;
        let mut expected = opened + interval;
        while expected < stale {
            expected += interval;
        }
        Some(expected.checked_sub(lead).unwrap_or(now).max(now))
    }
}

/// The time a collection is started ahead of the scrape: one and a half times the last
/// collection, and half a second more, at most half the interval.
pub fn lead(last_collection: Duration, interval: Duration) -> Duration {
    (last_collection.mul_f64(1.5) + Duration::from_millis(500)).min(interval / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(29);

    #[test]
    fn the_next_collection_comes_just_before_the_scrape_that_would_find_it_stale() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut scrapes = Scrapes::default();
        scrapes.record(s(0), WINDOW);
        let lead = Duration::from_secs(2);
        assert_eq!(
            scrapes.next_start(s(1), s(1), WINDOW, lead, 3),
            None,
            "no interval yet"
        );
        scrapes.record(s(30), WINDOW);
        // Finished at 31: stale at 60, the scrape at 60 is the one to be ready for.
        assert_eq!(
            scrapes.next_start(s(31), s(31), WINDOW, lead, 3),
            Some(s(58))
        );
        // A second Prometheus 10 s after the first does not change the interval.
        scrapes.record(s(40), WINDOW);
        assert_eq!(
            scrapes.next_start(s(41), s(31), WINDOW, lead, 3),
            Some(s(58))
        );
        // Scraped every 15 s with a 29 s window: one collection serves two scrapes.
        let mut fast = Scrapes::default();
        fast.record(s(0), WINDOW);
        fast.record(s(15), WINDOW);
        assert_eq!(fast.next_start(s(16), s(16), WINDOW, lead, 3), Some(s(43)));
    }

    #[test]
    fn it_stops_after_idle_windows() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut scrapes = Scrapes::default();
        scrapes.record(s(0), WINDOW);
        scrapes.record(s(30), WINDOW);
        let lead = Duration::from_secs(2);
        assert!(scrapes.next_start(s(100), s(90), WINDOW, lead, 3).is_some());
        assert_eq!(scrapes.next_start(s(121), s(118), WINDOW, lead, 3), None);
    }

    #[test]
    fn the_lead_follows_the_collection_time() {
        let interval = Duration::from_secs(30);
        assert_eq!(
            lead(Duration::from_millis(200), interval),
            Duration::from_millis(800)
        );
        assert_eq!(
            lead(Duration::from_secs(60), interval),
            Duration::from_secs(15)
        );
    }
}

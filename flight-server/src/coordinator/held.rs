//! The store behind [`super::ResultCache`]: results by handle, bounded by
//! their bytes and by a time-to-live each.
//!
//! Entries leave in the order they came (reading one does not make it
//! younger), results already fetched before those an analyst is still to
//! fetch, and every entry once its time is up. Expiry is checked on every
//! operation, so an expired result is never served; one sweeper per cache
//! (not one timer per result) takes expired results out when nobody
//! touches the store, so that a shutdown is not kept waiting for them.

use std::time::{Duration, Instant};

use lru::LruCache;

/// One entry: the value, its bytes, and when its time is up.
#[derive(Debug)]
struct Entry<V> {
    value: V,
    bytes: usize,
    expires: Instant,
}

/// Values by key, at most `max_bytes` of them together, each for `ttl`.
#[derive(Debug)]
pub(super) struct Held<V> {
    entries: LruCache<String, Entry<V>>,
    bytes: usize,
    max_bytes: usize,
    ttl: Duration,
}

impl<V> Held<V> {
    /// An empty store.
    pub(super) fn new(max_bytes: usize, ttl: Duration) -> Self {
        Self {
            entries: LruCache::unbounded(),
            bytes: 0,
            max_bytes,
            ttl,
        }
    }

    /// Take out every entry whose time is up at `now`; returns them.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<V> {
        let mut gone = Vec::new();
        while let Some((_, e)) = self.entries.peek_lru() {
            if e.expires > now {
                break;
            }
            if let Some((_, e)) = self.entries.pop_lru() {
                self.bytes -= e.bytes;
                gone.push(e.value);
            }
        }
        gone
    }

    /// The value under `key`, to change it in place, while its time runs.
    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let now = Instant::now();
        self.entries
            .peek_mut(key)
            .filter(|e| e.expires > now)
            .map(|e| &mut e.value)
    }

    /// Take the value under `key` out.
    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        let e = self.entries.pop(key)?;
        self.bytes -= e.bytes;
        Some(e.value)
    }

    /// Keep `value` (of `bytes`) under `key` for the store's time-to-live,
    /// replacing what was there, and evict until everything fits: the
    /// oldest of the entries `first` picks, then the oldest of the rest.
    /// Returns what was evicted, or `value` back if it alone is larger
    /// than the whole store.
    pub(super) fn insert(
        &mut self,
        key: String,
        value: V,
        bytes: usize,
        first: impl Fn(&V) -> bool,
    ) -> Result<Vec<V>, V> {
        if bytes > self.max_bytes {
            return Err(value);
        }
        let mut evicted = self.expire(Instant::now());
        evicted.extend(self.remove(&key));
        while self.bytes + bytes > self.max_bytes {
            let preferred = self
                .entries
                .iter()
                .rev()
                .find(|(_, e)| first(&e.value))
                .map(|(k, _)| k.clone());
            let gone = match preferred {
                Some(k) => self.entries.pop(&k),
                None => self.entries.pop_lru().map(|(_, e)| e),
            };
            let Some(e) = gone else { break };
            self.bytes -= e.bytes;
            evicted.push(e.value);
        }
        self.bytes += bytes;
        let expires = Instant::now() + self.ttl;
        self.entries.put(
            key,
            Entry {
                value,
                bytes,
                expires,
            },
        );
        Ok(evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn the_oldest_go_first_and_the_preferred_before_them() {
        let mut held = Held::new(10, DAY);
        let none = |_: &(&str, bool)| false;
        assert!(held.insert("a".into(), ("a", false), 4, none).is_ok());
        assert!(held.insert("b".into(), ("b", true), 4, none).is_ok());
        let _ = held.get_mut("a");
        // "a" is oldest (reading it made it no younger), but "b" is the
        // one to evict first.
        let evicted = held
            .insert("c".into(), ("c", false), 4, |v| v.1)
            .expect("fits");
        assert_eq!(evicted, vec![("b", true)]);
        let evicted = held
            .insert("d".into(), ("d", false), 4, none)
            .expect("fits");
        assert_eq!(evicted, vec![("a", false)]);
        assert!(held.insert("e".into(), ("e", false), 11, none).is_err());
        assert_eq!(held.remove("c"), Some(("c", false)));
        assert!(held.get_mut("c").is_none());
    }

    #[test]
    fn an_entry_whose_time_is_up_is_never_served_and_leaves_once() {
        let mut held = Held::new(10, Duration::ZERO);
        assert!(held.insert("a".into(), 1, 4, |_| false).is_ok());
        assert!(held.get_mut("a").is_none(), "served after its time");
        assert_eq!(held.expire(Instant::now()), vec![1]);
        assert!(held.expire(Instant::now()).is_empty());
        assert_eq!(held.bytes, 0);
    }
}

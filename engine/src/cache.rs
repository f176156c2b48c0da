//! A map bounded by the bytes of what it holds, oldest first out: the
//! coordinator's results waiting for their `DoGet`, and dp mode's cache of
//! paid-for releases (`[resources] result_cache_mb` each).
//!
//! Entries leave in the order they came (reading one does not make it
//! younger), and the caller can say which to evict first: a result already
//! fetched goes before one an analyst is still to fetch.

use lru::LruCache;

/// Values by key, at most `max_bytes` of them together.
#[derive(Debug)]
pub struct ByteBounded<V> {
    /// Key → (value, its bytes), oldest first.
    entries: LruCache<String, (V, usize)>,
    bytes: usize,
    max_bytes: usize,
}

impl<V> ByteBounded<V> {
    /// An empty map holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: LruCache::unbounded(),
            bytes: 0,
            max_bytes,
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.peek(key).map(|(v, _)| v)
    }

    /// The value under `key`, to change it in place.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.entries.peek_mut(key).map(|(v, _)| v)
    }

    /// Take the value under `key` out.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let (value, bytes) = self.entries.pop(key)?;
        self.bytes -= bytes;
        Some(value)
    }

    /// Keep `value` (of `bytes`) under `key`, replacing what was there,
    /// and evict until everything fits: the oldest of the entries `first`
    /// picks, then the oldest of the rest. Returns what was evicted, or
    /// `value` back if it alone is larger than the whole map.
    pub fn insert(
        &mut self,
        key: String,
        value: V,
        bytes: usize,
        first: impl Fn(&V) -> bool,
    ) -> Result<Vec<V>, V> {
        if bytes > self.max_bytes {
            return Err(value);
        }
        let mut evicted: Vec<V> = self.remove(&key).into_iter().collect();
        while self.bytes + bytes > self.max_bytes {
            let preferred = self
                .entries
                .iter()
                .rev()
                .find(|(_, (v, _))| first(v))
                .map(|(k, _)| k.clone());
            let gone = match preferred {
                Some(k) => self.entries.pop(&k),
                None => self.entries.pop_lru().map(|(_, entry)| entry),
            };
            let Some((v, b)) = gone else { break };
            self.bytes -= b;
            evicted.push(v);
        }
        self.bytes += bytes;
        self.entries.put(key, (value, bytes));
        Ok(evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_first_and_the_preferred_before_them() {
        let mut cache = ByteBounded::new(10);
        let none = |_: &(&str, bool)| false;
        assert!(cache.insert("a".into(), ("a", false), 4, none).is_ok());
        assert!(cache.insert("b".into(), ("b", true), 4, none).is_ok());
        let _ = cache.get("a");
        // "a" is oldest (reading it made it no younger), but "b" is the
        // one to evict first.
        let evicted = cache
            .insert("c".into(), ("c", false), 4, |v| v.1)
            .expect("fits");
        assert_eq!(evicted, vec![("b", true)]);
        let evicted = cache
            .insert("d".into(), ("d", false), 4, none)
            .expect("fits");
        assert_eq!(evicted, vec![("a", false)]);
        assert!(cache.insert("e".into(), ("e", false), 11, none).is_err());
        assert_eq!(cache.remove("c"), Some(("c", false)));
        assert!(cache.get("c").is_none());
    }
}

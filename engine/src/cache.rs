//! A map bounded by the bytes of what it holds, oldest first out: dp
//! mode's cache of paid-for releases (`[resources] result_cache_mb`).
//! Entries leave in the order they came (reading one does not make it
//! younger).

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

    /// Take the value under `key` out.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let (value, bytes) = self.entries.pop(key)?;
        self.bytes -= bytes;
        Some(value)
    }

    /// Keep `value` (of `bytes`) under `key`, replacing what was there,
    /// and evict the oldest entries until everything fits. Returns what
    /// was evicted, or `value` back if it alone is larger than the map.
    pub fn insert(&mut self, key: String, value: V, bytes: usize) -> Result<Vec<V>, V> {
        if bytes > self.max_bytes {
            return Err(value);
        }
        let mut evicted: Vec<V> = self.remove(&key).into_iter().collect();
        while self.bytes + bytes > self.max_bytes {
            let Some((_, (v, b))) = self.entries.pop_lru() else {
                break;
            };
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
    fn the_oldest_go_first() {
        let mut cache = ByteBounded::new(10);
        assert!(cache.insert("a".into(), "a", 4).is_ok());
        assert!(cache.insert("b".into(), "b", 4).is_ok());
        let _ = cache.get("a");
        // "a" is oldest: reading it made it no younger.
        assert_eq!(cache.insert("c".into(), "c", 4), Ok(vec!["a"]));
        assert!(cache.insert("e".into(), "e", 11).is_err());
        assert_eq!(cache.remove("c"), Some("c"));
        assert!(cache.get("c").is_none());
    }
}

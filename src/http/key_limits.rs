//! `auth.max_sessions_per_key`: how many live streams each API key holds, so one client's key
//! cannot take every slot of a shared server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The key a request was let in with (set by the auth layer when keys are configured).
#[derive(Debug, Clone)]
pub struct PresentedKey(pub Arc<str>);

/// Live streams per key.
#[derive(Debug, Default)]
pub struct KeySessions {
    open: Mutex<HashMap<Arc<str>, usize>>,
}

/// One stream held by a key; gives it back when dropped.
#[derive(Debug)]
pub struct KeySlot {
    sessions: Arc<KeySessions>,
    key: Arc<str>,
}

impl KeySessions {
    /// Takes a slot for `key`, or `None` when it already holds `limit` streams (0: no limit).
    pub fn acquire(self: &Arc<Self>, key: &PresentedKey, limit: usize) -> Option<KeySlot> {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let held = open.entry(key.0.clone()).or_insert(0);
        if limit > 0 && *held >= limit {
            return None;
        }
        *held += 1;
        Some(KeySlot { sessions: self.clone(), key: key.0.clone() })
    }

    /// Streams `key` holds now.
    pub fn held(&self, key: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.get(key).copied().unwrap_or(0)
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(held) = open.get_mut(&self.key) {
            *held -= 1;
            // Keys rotate; forget the ones with nothing open so the map does not grow.
            if *held == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_limit_and_gets_slots_back() {
        let sessions = Arc::new(KeySessions::default());
        let (a, b) = (PresentedKey("key-a".into()), PresentedKey("key-b".into()));
        let first = sessions.acquire(&a, 2).unwrap();
        let second = sessions.acquire(&a, 2).unwrap();
        assert!(sessions.acquire(&a, 2).is_none(), "third stream on key a");
        assert!(sessions.acquire(&b, 2).is_some(), "other keys are not affected");
        drop(first);
        assert_eq!(sessions.held("key-a"), 1);
        assert!(sessions.acquire(&a, 2).is_some());
        drop(second);
        assert!((0..10).all(|_| sessions.acquire(&a, 0).map(std::mem::forget).is_some()), "0 means no limit");
    }
}

//! The sessions of each signed-in user of a `stomp` service, so that the
//! backend can reach or end all of them (`POST /api/users/{user}/...`).

use super::frame::{Frame, Version};
use crate::service::api::SessionHandle;
use std::collections::HashMap;
use std::sync::Mutex;

/// The longest user name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The one rule for a user name, from a JWT's `sub`, the connect webhook
/// or the demo sign-in: 1 to 255 bytes, no `/` (it would change what
/// `/user/NAME/queue/...` means) and no control characters (NUL, line
/// breaks: names go into keys, headers and logs).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the user name must be 1 to {MAX_NAME_BYTES} bytes, it was {}",
            name.len()
        ));
    }
    if name.contains('/') || name.chars().any(char::is_control) {
        return Err("the user name holds a '/' or a control character".into());
    }
    Ok(())
}

/// The close code of a session ended by the backend
/// (`POST /api/users/{user}/disconnect`), after an ERROR frame that says so.
pub const CLOSE_DISCONNECTED: u16 = 4410;

struct Member {
    session: u64,
    version: Version,
    handle: SessionHandle,
}

#[derive(Default)]
pub struct Users {
    by_name: Mutex<HashMap<String, Vec<Member>>>,
    /// Told, under the lock (so in order), when a user gets a first
    /// session here (`true`) or loses the last.
    follow: Option<super::topics::Follow>,
}

impl Users {
    /// Users that tell `follow` of each user's first and last session.
    pub fn following(follow: super::topics::Follow) -> Self {
        Users {
            by_name: Mutex::default(),
            follow: Some(follow),
        }
    }

    fn told(&self, user: &str, held: bool) {
        if let Some(follow) = &self.follow {
            follow(user, held);
        }
    }

    /// Adds a session of `user`, unless `user` holds `room` sessions here
    /// already (`None`: no limit). Whether it was added.
    pub fn add(
        &self,
        user: &str,
        session: u64,
        version: Version,
        handle: SessionHandle,
        room: Option<usize>,
    ) -> bool {
        let mut map = self.lock();
        let held = map.get(user).map_or(0, Vec::len);
        if room.is_some_and(|room| held >= room) {
            return false;
        }
        let members = map.entry(user.to_owned()).or_insert_with(|| {
            self.told(user, true);
            Vec::new()
        });
        members.push(Member {
            session,
            version,
            handle,
        });
        true
    }

    pub fn remove(&self, user: &str, session: u64) {
        let mut map = self.lock();
        if let Some(members) = map.get_mut(user) {
            members.retain(|m| m.session != session);
            if members.is_empty() {
                map.remove(user);
                self.told(user, false);
            }
        }
    }

    /// Ends every session of `user`: an ERROR frame with `message`, then a
    /// close with [`CLOSE_DISCONNECTED`]. Returns how many.
    pub fn disconnect(&self, user: &str, message: &str) -> usize {
        let members = {
            let mut map = self.lock();
            let members = map.remove(user).unwrap_or_default();
            if !members.is_empty() {
                self.told(user, false);
            }
            members
        };
        for m in &members {
            let error = Frame::new("ERROR")
                .header("message", message)
                .header("content-type", "text/plain")
                .body("the backend ended this user's sessions");
            m.handle.send(error.encode(m.version));
            m.handle.close(CLOSE_DISCONNECTED, message);
        }
        members.len()
    }

    /// Sessions of `user`.
    pub fn count(&self, user: &str) -> usize {
        self.lock().get(user).map_or(0, Vec::len)
    }

    /// Sessions by user.
    pub fn counts(&self) -> std::collections::BTreeMap<String, usize> {
        self.lock()
            .iter()
            .map(|(user, members)| (user.clone(), members.len()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Member>>> {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner())
    }
}

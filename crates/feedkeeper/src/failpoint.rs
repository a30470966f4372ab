//! Named pause points for crash tests: a test arms `(name, key)`, and the code that reaches
//! [`hit`] with that pair waits there until the test aborts the task (a crash at exactly that
//! point) or disarms it. Unarmed, a hit costs one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

static ANY_ARMED: AtomicBool = AtomicBool::new(false);

#[derive(Default)]
struct Point {
    reached: Arc<Notify>,
    released: Arc<Notify>,
}

fn points() -> &'static Mutex<HashMap<(String, String), Point>> {
    static POINTS: OnceLock<Mutex<HashMap<(String, String), Point>>> = OnceLock::new();
    POINTS.get_or_init(Default::default)
}

/// Where a job may be stopped: after Meta answered a lifecycle check, before anything is stored.
pub const AFTER_META_ANSWER: &str = "lifecycle.after_meta_answer";

/// Inside the transaction of each writer about a connection, right after its first lock: a
/// test holds one side of a race there while the other side runs (tests/it/lock_order.rs).
pub const CONNECT_TX: &str = "tx.connect";
pub const DISCONNECT_TX: &str = "tx.disconnect";
pub const DATA_DELETION_TX: &str = "tx.data_deletion";
pub const PURGE_TX: &str = "tx.purge";
pub const LIFECYCLE_TX: &str = "tx.lifecycle_apply";
pub const SYNC_STORE_TX: &str = "tx.sync_store";
pub const WIDGET_CREATE_TX: &str = "tx.widget_create";
/// The compose job's transaction, right after it locked the connections of one message (key:
/// as for connections, the lowest id).
pub const MAIL_COMPOSE_TX: &str = "tx.mail_compose";
/// The fetch job pointing a picture at its stored original (key: as for connections).
pub const IMAGE_ATTACH_TX: &str = "tx.image_attach";
/// The variants job marking an image ready (key: the image key).
pub const IMAGE_READY_TX: &str = "tx.image_ready";
/// The variants job after its variants are stored, before any transaction (key: the image
/// key): a test holds one node there while another runs.
pub const IMAGE_VARIANTS_STORED: &str = "images.variants_stored";

/// Before each read of the widget change log (key: the node's name): a test stalls a node's
/// poller there.
pub const WIDGET_POLL: &str = "widgets.poll";

/// The key of a point about connection `id` in this running service (its node name makes it
/// unique even when several services share a process, as tests do).
pub fn key(state: &crate::state::AppState, id: crate::ids::ConnectionId) -> String {
    format!("{}:{id}", state.node)
}

/// Arms the point `name` for `key` (e.g. a connection id). Returns a handle that resolves once
/// the code reaches it.
pub fn arm(name: &str, key: &str) -> Armed {
    let point = Point::default();
    let reached = point.reached.clone();
    let released = point.released.clone();
    points()
        .lock()
        .expect("failpoint registry")
        .insert((name.to_owned(), key.to_owned()), point);
    ANY_ARMED.store(true, Ordering::SeqCst);
    Armed { reached, released }
}

/// An armed point.
pub struct Armed {
    reached: Arc<Notify>,
    released: Arc<Notify>,
}

impl Armed {
    /// Waits until the code reaches the point (and parks there).
    pub async fn reached(&self) {
        self.reached.notified().await
    }
    /// Lets the parked code go on.
    pub fn release(&self) {
        self.released.notify_one()
    }
}

/// Parks here if a test armed `(name, key)`; returns at once otherwise.
pub async fn hit(name: &str, key: &str) {
    if !ANY_ARMED.load(Ordering::Relaxed) {
        return;
    }
    let armed = {
        let mut map = points().lock().expect("failpoint registry");
        map.remove(&(name.to_owned(), key.to_owned()))
    };
    if let Some(point) = armed {
        point.reached.notify_one();
        point.released.notified().await;
    }
}

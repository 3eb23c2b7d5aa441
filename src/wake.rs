//! Waking getOrSet waiters when another process stored the value (or gave
//! its lease up): one pub/sub connection per instance, opened on the first
//! wait and kept while the instance is connected. The holder's store and
//! release scripts PUBLISH the key's stored name on `<prefix>__fluxor__:filled`
//! (src/getorset.rs); every waiter on that name wakes and re-reads.
//!
//! A blocking command on the shared multiplexed connection would stall every
//! other command behind it, hence a connection of its own. In a cluster any
//! node's subscribers hear every PUBLISH, so the first seed that answers
//! serves; behind Sentinel, the master found last. Best effort: while the subscription is down (not yet made, the
//! node gone), a wait simply runs out, and the waiter polls with backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::{Client, ConnectionInfo};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::options::{Options, Target};

/// Waiters by stored key name.
type Waiters = Mutex<HashMap<Vec<u8>, Vec<oneshot::Sender<()>>>>;

#[derive(Default)]
pub struct Wakes {
  waiters: Arc<Waiters>,
  listener: Mutex<Listener>,
}

#[derive(Default)]
struct Listener {
  task: Option<JoinHandle<()>>,
  /// No new attempt before this (after one failed).
  retry_at: Option<Instant>,
}

impl Wakes {
  /// Resolves true when `key` (a stored name) was published within
  /// `timeout`, false when the time ran out.
  pub async fn wait(&self, opts: &Options, channel: Vec<u8>, key: Vec<u8>, timeout: Duration) -> bool {
    self.listen(opts, channel);
    let (tx, rx) = oneshot::channel();
    self.waiters.lock().unwrap().entry(key.clone()).or_default().push(tx);
    let woken = matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(())));
    if !woken {
      let mut waiters = self.waiters.lock().unwrap();
      if let Some(list) = waiters.get_mut(&key) {
        list.retain(|tx| !tx.is_closed());
        if list.is_empty() {
          waiters.remove(&key);
        }
      }
    }
    woken
  }

  /// Starts the subscriber unless it runs (or failed less than a second ago).
  fn listen(&self, opts: &Options, channel: Vec<u8>) {
    let mut listener = self.listener.lock().unwrap();
    if listener.task.as_ref().is_some_and(|t| !t.is_finished()) || listener.retry_at.is_some_and(|at| Instant::now() < at) {
      return;
    }
    listener.retry_at = Some(Instant::now() + Duration::from_secs(1));
    let nodes: Vec<ConnectionInfo> = match &opts.target {
      Target::Standalone(info) => vec![info.clone()],
      Target::Cluster(nodes) => nodes.clone(),
      Target::Sentinel(sentinel) => sentinel.master_now().into_iter().collect(),
    };
    let (tls, connect_timeout) = (opts.tls.clone(), opts.connect_timeout);
    let waiters = Arc::downgrade(&self.waiters);
    listener.task = Some(napi::bindgen_prelude::spawn(async move {
      for info in nodes {
        let client = match &tls {
          Some(certs) => Client::build_with_tls(info, certs.clone()),
          None => Client::open(info),
        };
        let Ok(client) = client else { continue };
        let Ok(Ok(pubsub)) = tokio::time::timeout(connect_timeout, client.get_async_pubsub()).await else { continue };
        let (mut sink, mut stream) = pubsub.split();
        if sink.subscribe(&channel).await.is_err() {
          continue;
        }
        while let Some(msg) = stream.next().await {
          if !wake(&waiters, msg.get_payload_bytes()) {
            return;
          }
        }
      }
    }));
  }

  /// Drops the subscription (disconnect, or the instance collected).
  pub fn stop(&self) {
    let mut listener = self.listener.lock().unwrap();
    if let Some(task) = listener.task.take() {
      task.abort();
    }
    listener.retry_at = None;
  }
}

impl Drop for Wakes {
  fn drop(&mut self) {
    self.stop();
  }
}

/// Wakes the waiters on `key`; false once nobody can wait any more.
fn wake(waiters: &Weak<Waiters>, key: &[u8]) -> bool {
  let Some(waiters) = waiters.upgrade() else { return false };
  let woken = waiters.lock().unwrap().remove(key);
  for tx in woken.into_iter().flatten() {
    let _ = tx.send(());
  }
  true
}

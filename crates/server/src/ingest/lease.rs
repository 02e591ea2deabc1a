//! One PutMedia writer per stream, cluster-wide (docs/architecture.md#writer-lease): a PutMedia
//! holds its stream's writer lease in the catalog from its start to its end, renews it while it
//! runs, and stamps every fragment with the lease's epoch, so a holder that was paused past a
//! takeover can never commit again (the catalog refuses rows of an old epoch).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use store::{Catalog, LeaseRenewal, StoreError, StreamId, WriterLease};
use tokio_util::sync::CancellationToken;

/// How long a lease lasts without a renewal: how soon another node may take over a stream whose
/// holder died (docs/architecture.md#writer-lease).
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// How often a running PutMedia renews its lease: four renewals per TTL, so one slow catalog round
/// trip does not lose it.
const RENEW_EVERY: Duration = Duration::from_millis(750);
/// How long a new PutMedia waits for the lease before `ConnectionLimitExceededException`: longer
/// than a TTL, so a producer reconnecting after its node died gets in by waiting (a live holder
/// renews in time and keeps the stream); a client sees a slow answer, never a refusal, on takeover.
pub const ACQUIRE_WAIT: Duration = Duration::from_millis(LEASE_TTL.as_millis() as u64 + 500);
/// Between attempts while another holder's lease is valid.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Why no lease was granted.
#[derive(Debug)]
pub enum AcquireError {
    /// Another connection (on this node or another) holds the stream and renews it.
    Held,
    Store(StoreError),
}

/// The node's held leases, renewed together: one catalog round trip every [`RENEW_EVERY`] for all
/// of them (`Catalog::renew_writer_leases`), not one per PutMedia (docs/architecture.md#writer-lease).
/// Made with the node's ingest state; its task starts with the first lease and ends with the state.
#[derive(Default)]
pub struct LeaseKeeper {
    inner: Arc<KeeperInner>,
}

#[derive(Default)]
struct KeeperInner {
    held: std::sync::Mutex<HashMap<WriterLease, Held>>,
    /// Held for the whole of a renewal round: a release waits for the round in flight, so that
    /// round cannot extend a lease after its release ended it.
    round: tokio::sync::Mutex<()>,
    task: std::sync::OnceLock<tokio::task::JoinHandle<()>>,
}

struct Held {
    lost: CancellationToken,
    renewed: tokio::time::Instant,
}

impl KeeperInner {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<WriterLease, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        if let Some(task) = self.inner.task.get() {
            task.abort();
        }
    }
}

/// A held lease: renewed by the node's [`LeaseKeeper`] until released or dropped.
pub struct HeldLease {
    pub lease: WriterLease,
    /// Cancelled when the lease is lost (another epoch took over, or it could not be renewed for a
    /// whole TTL): the connection must stop; its uncommitted fragments are refused by the catalog.
    pub lost: CancellationToken,
    catalog: Arc<dyn Catalog>,
    keeper: Arc<KeeperInner>,
}

/// Acquires `stream`'s lease for `holder`, waiting up to `wait` while another holder has it.
pub async fn acquire(
    keeper: &LeaseKeeper,
    catalog: Arc<dyn Catalog>,
    stream: StreamId,
    holder: &str,
    wait: Duration,
) -> Result<HeldLease, AcquireError> {
    let deadline = tokio::time::Instant::now() + wait;
    let lease = loop {
        match catalog
            .acquire_writer_lease(stream, holder, LEASE_TTL)
            .await
        {
            Ok(Some(lease)) => break lease,
            Ok(None) if tokio::time::Instant::now() + RETRY_EVERY < deadline => {
                tokio::time::sleep(RETRY_EVERY).await
            }
            Ok(None) => return Err(AcquireError::Held),
            Err(e) => return Err(AcquireError::Store(e)),
        }
    };
    let lost = CancellationToken::new();
    keeper.inner.held().insert(
        lease,
        Held {
            lost: lost.clone(),
            renewed: tokio::time::Instant::now(),
        },
    );
    keeper
        .inner
        .task
        .get_or_init(|| tokio::spawn(keep(Arc::downgrade(&keeper.inner), catalog.clone())));
    Ok(HeldLease {
        lease,
        lost,
        catalog,
        keeper: keeper.inner.clone(),
    })
}

/// Renews every held lease each [`RENEW_EVERY`] until the keeper is gone.
async fn keep(keeper: Weak<KeeperInner>, catalog: Arc<dyn Catalog>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let Some(keeper) = keeper.upgrade() else {
            return;
        };
        renew_round(&keeper, &*catalog).await;
    }
}

/// One round: every lease held now, in one call.
async fn renew_round(keeper: &KeeperInner, catalog: &dyn Catalog) {
    let _round = keeper.round.lock().await;
    let leases: Vec<WriterLease> = keeper.held().keys().copied().collect();
    if leases.is_empty() {
        return;
    }
    let answer = catalog.renew_writer_leases(&leases, LEASE_TTL).await;
    let now = tokio::time::Instant::now();
    let mut held = keeper.held();
    match answer {
        Ok(renewed) => {
            for (lease, renewal) in leases.iter().zip(renewed) {
                match renewal {
                    LeaseRenewal::Renewed => {
                        if let Some(h) = held.get_mut(lease) {
                            h.renewed = now;
                        }
                    }
                    // Its row was held by a commit in flight (this connection's own, mostly):
                    // the next round renews it. Even past its TTL nobody else can have taken it
                    // over unseen: a takeover shows as Lost.
                    LeaseRenewal::Busy => {}
                    LeaseRenewal::Lost => {
                        if let Some(h) = held.remove(lease) {
                            tracing::warn!(stream = ?lease.stream, epoch = lease.epoch, "writer lease taken over by another connection");
                            h.lost.cancel();
                        }
                    }
                }
            }
        }
        // The catalog is unreachable: keep trying while a lease may still be ours. After a TTL
        // another node may hold it, so stop: the catalog would refuse our rows anyway.
        Err(e) => {
            tracing::warn!(leases = leases.len(), error = %e, "writer lease renewal failed; retrying");
            held.retain(|lease, h| {
                let keep = now.saturating_duration_since(h.renewed) < LEASE_TTL;
                if !keep {
                    tracing::error!(stream = ?lease.stream, "writer lease not renewed for a whole TTL; stopping ingest");
                    h.lost.cancel();
                }
                keep
            });
        }
    }
}

impl HeldLease {
    /// Stops renewing and releases the lease, so the next writer need not wait for it to lapse.
    pub async fn release(self) {
        self.keeper.held().remove(&self.lease);
        // After any round in flight, which may still have renewed it.
        let _round = self.keeper.round.lock().await;
        if let Err(e) = self.catalog.release_writer_lease(self.lease).await {
            // It lapses by itself after LEASE_TTL.
            tracing::warn!(stream = ?self.lease.stream, error = %e, "writer lease not released");
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        // `release` removed it already, or the connection task ended without it (a panic): stop
        // renewing; the lease lapses after LEASE_TTL.
        self.keeper.held().remove(&self.lease);
    }
}

#[cfg(test)]
mod tests;

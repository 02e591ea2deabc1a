//! One PutMedia writer per stream, cluster-wide (docs/architecture.md#writer-lease): a PutMedia
//! holds its stream's writer lease in the catalog from its start to its end, renews it while it
//! runs, and stamps every fragment with the lease's epoch, so a holder that was paused past a
//! takeover can never commit again (the catalog refuses rows of an old epoch).

use std::sync::Arc;
use std::time::Duration;

use store::{Catalog, StoreError, StreamId, WriterLease};
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

/// A held lease: renewed in the background until dropped, then released.
pub struct HeldLease {
    pub lease: WriterLease,
    /// Cancelled when the lease is lost (another epoch took over, or it could not be renewed for a
    /// whole TTL): the connection must stop; its uncommitted fragments are refused by the catalog.
    pub lost: CancellationToken,
    catalog: Arc<dyn Catalog>,
    keeper: tokio::task::JoinHandle<()>,
}

/// Acquires `stream`'s lease for `holder`, waiting up to `wait` while another holder has it.
pub async fn acquire(
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
    let keeper = tokio::spawn(keep(catalog.clone(), lease, lost.clone()));
    Ok(HeldLease {
        lease,
        lost,
        catalog,
        keeper,
    })
}

/// Renews until the lease is lost or the task is aborted.
async fn keep(catalog: Arc<dyn Catalog>, lease: WriterLease, lost: CancellationToken) {
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match catalog.renew_writer_lease(lease, LEASE_TTL).await {
            Ok(true) => renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::warn!(stream = ?lease.stream, epoch = lease.epoch, "writer lease taken over by another connection");
                lost.cancel();
                return;
            }
            // The catalog is unreachable: keep trying while the lease may still be ours. After a
            // TTL another node may hold it, so stop: the catalog would refuse our rows anyway.
            Err(e) if renewed.elapsed() < LEASE_TTL => {
                tracing::warn!(stream = ?lease.stream, error = %e, "writer lease renewal failed; retrying")
            }
            Err(e) => {
                tracing::error!(stream = ?lease.stream, error = %e, "writer lease not renewed for a whole TTL; stopping ingest");
                lost.cancel();
                return;
            }
        }
    }
}

impl HeldLease {
    /// Stops renewing and releases the lease, so the next writer need not wait for it to lapse.
    pub async fn release(self) {
        self.keeper.abort();
        if let Err(e) = self.catalog.release_writer_lease(self.lease).await {
            // It lapses by itself after LEASE_TTL.
            tracing::warn!(stream = ?self.lease.stream, error = %e, "writer lease not released");
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        // `release` consumed it, or the connection task ended without it (a panic): stop renewing.
        self.keeper.abort();
    }
}

//! Background tasks a catalog owns.

/// A task that ends with its owner: aborted on drop, so nothing keeps running (a listener
/// retrying against a server, a cache follower) after the catalog that started it is gone.
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! The conformance suite (`conformance/mod.rs`) on the object media store
//! (`store::object::ObjectMediaStore`) over object_store's in-memory store, paired with the SQLite
//! catalog in a temporary directory. conformance_garage.rs runs the same against a real Garage.

mod conformance;
mod object_backend;

use object_store::memory::InMemory;
use std::sync::Arc;

fn backend() -> object_backend::ObjectBackend {
    object_backend::ObjectBackend::new(Arc::new(InMemory::new()), "media")
}

mod object {
    crate::conformance_suite!(crate::backend());
}

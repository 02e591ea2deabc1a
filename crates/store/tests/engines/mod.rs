//! The engines the scale-out backends' tests run against, one per test binary: a private
//! PostgreSQL cluster and a Garage. Each binary uses what it needs of them.
#![allow(dead_code)]

pub mod garage;
pub mod postgres;

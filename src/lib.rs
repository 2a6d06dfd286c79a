//! shmwho: every shared-memory object on a Linux host, measured and charged to processes.
//!
//! Data flows one way: [`collect`] reads `/proc` into a [`model::Snapshot`], [`account`] derives
//! owners, charges and the reconciliation with `Shmem`, [`render`] prints them.

#![warn(missing_docs)]

pub mod account;
pub mod cli;
pub mod collect;
pub mod error;
pub mod export;
pub mod lab;
pub mod model;
pub mod output_file;
pub mod privilege;
pub mod record;
pub mod redact;
pub mod render;
pub mod report;
pub mod schema;
pub mod show;
pub mod signals;
pub mod size;
pub mod top;

#![doc = include_str!("../README.md")]
//!
//! ## Layout
//!
//! Every module holds one wire concept and its table-driven tests. Parsers of outside bytes
//! return [`Error`]; none of them panics on any input (property tests in `tests/`).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod error;
pub mod hex;
pub mod ids;
pub mod location;
pub mod lpp;
pub mod topic;

#[cfg(feature = "serde")]
pub mod agent_build;
#[cfg(feature = "serde")]
pub mod edge;
#[cfg(feature = "serde")]
pub mod edge_firmware;
#[cfg(feature = "serde")]
pub mod gateway_config;
#[cfg(feature = "serde")]
pub mod layout;
#[cfg(feature = "serde")]
pub mod legacy;
#[cfg(feature = "serde")]
pub mod pyjson;
#[cfg(feature = "serde")]
pub mod sync;

pub use error::Error;
pub use ids::{DevAddr, DevEui, DeviceUid, Eui64, Mac, UidKind};
pub use location::{BaseTopic, Place, SiteScope, sanitize};
pub use topic::{TopicFilter, TopicName};

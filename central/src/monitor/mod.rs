//! Monitoring: device states over time and outage alerts.
//!
//! [`tracker`] is the pure state machine (deadline index, hysteresis, grouping by building).

pub mod deadlines;
pub mod tracker;

//! Central's keys: the shared implementation lives in `neosens_runtime::keys` (gateways use the
//! same code with the pair central gives them at enrolment).

pub use neosens_runtime::keys::{KeyError, Keys as ServerKeys, TOKEN_PREFIX};

//! The log filter from its three sources: the gateway's file (or `NEOSENS_LOG`), which wins when
//! it sets the key; central's settings; the default. Kept here, beside the subscriber's own
//! filter, so that SIGHUP (the file again) and a change of central's settings each install what
//! the other leaves in force.

use parking_lot::Mutex;

use neosens_protocol::gateway_config::ManagedConfig;

use crate::Config;

/// The sources, and the filter installed from them.
#[derive(Debug, Default)]
struct Layers {
    /// The local configuration's filter (its default when it sets none).
    local: String,
    /// Whether the file or the command line sets it.
    pinned: bool,
    /// Central's, when its settings are applied and set one.
    central: Option<String>,
    /// The filter in force.
    installed: Option<String>,
    /// Central's filter this agent's parser refused (said once).
    refused: Option<String>,
}

impl Layers {
    fn wanted(&self) -> String {
        match &self.central {
            Some(central) if !self.pinned => central.clone(),
            _ => self.local.clone(),
        }
    }
}

/// One agent per process: the subscriber is global too.
static LAYERS: Mutex<Option<Layers>> = Mutex::new(None);

/// At start: the subscriber was installed with the local filter; central's, if it applies,
/// replaces it.
pub(super) fn start(local: &Config, central: Option<&ManagedConfig>) {
    *LAYERS.lock() = Some(Layers {
        local: local.log.filter.clone(),
        pinned: local.pinned.contains("log.filter"),
        central: None,
        installed: Some(local.log.filter.clone()),
        refused: None,
    });
    set_central(central);
}

/// Central's settings changed (`None`: none apply): installs the filter they leave in force,
/// when it is not the one installed.
pub(super) fn set_central(central: Option<&ManagedConfig>) {
    let mut guard = LAYERS.lock();
    let Some(layers) = guard.as_mut() else { return };
    layers.central = central.and_then(|c| c.log.filter.clone());
    let wanted = layers.wanted();
    if layers.installed.as_deref() == Some(wanted.as_str()) {
        return;
    }
    match neosens_runtime::telemetry::installed().map(|f| f.reload(&wanted)) {
        Some(Ok(())) => {
            tracing::info!(filter = %wanted, "log filter from central's settings");
            layers.installed = Some(wanted);
        }
        Some(Err(e)) => {
            if layers.refused.as_deref() != Some(wanted.as_str()) {
                tracing::warn!(error = %e, "central's log filter is not applied");
                layers.refused = Some(wanted);
            }
        }
        // No subscriber of ours (tests): nothing to swap, but the choice is made.
        None => layers.installed = Some(wanted),
    }
}

/// The filter SIGHUP installs, given the local configuration read again: the file's where it
/// sets one, else central's, else the default.
pub fn reload_filter(local: &Config) -> String {
    let mut guard = LAYERS.lock();
    let Some(layers) = guard.as_mut() else { return local.log.filter.clone() };
    layers.local.clone_from(&local.log.filter);
    layers.pinned = local.pinned.contains("log.filter");
    let mut wanted = layers.wanted();
    if neosens_runtime::telemetry::check_filter(&wanted).is_err() && wanted != layers.local {
        // Central's, refused by this agent's parser: the file's (or the default).
        wanted.clone_from(&layers.local);
    }
    // The service installs it (or keeps the previous one, saying why, if the file's does not
    // parse).
    layers.installed = Some(wanted.clone());
    wanted
}

/// The filter in force, as this module last installed or chose it.
pub(super) fn installed() -> Option<String> {
    LAYERS.lock().as_ref().and_then(|l| l.installed.clone())
}

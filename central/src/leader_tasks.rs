//! The tasks that run on the leading replica only (see [`crate::leader`]) besides the monitor
//! and dynamic security: firmware campaigns, their upgrade orders, bulk orders — and what a
//! replica reads again when it takes the lead.

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::{bulk, firmware, leader, model, registry};

/// Follows the firmware campaigns every few seconds (soaked waves start, progress, halts) and
/// sends the `upgrade` orders of started waves, paced; both restarted if they fail, and run only
/// while this replica leads (see [`takeover`]).
pub(crate) fn start_campaign_schedule(
    firmware: &firmware::Firmware,
    registry: &Arc<registry::Registry>,
    mqtt: &neosens_runtime::mqtt::MqttHandle,
    leadership: &leader::Leadership,
    tasks: &mut neosens_runtime::supervisor::Supervisor,
) {
    let (f, r, l, shutdown) =
        (firmware.clone(), Arc::clone(registry), leadership.clone(), tasks.shutdown().clone());
    tasks.restartable("campaign schedule", move || {
        let (f, r) = (f.clone(), Arc::clone(&r));
        leader::while_leading("campaign schedule", l.clone(), shutdown.clone(), move |term| {
            let (f, r) = (f.clone(), Arc::clone(&r));
            follow_campaigns(f, r, term)
        })
    });
    let (f, r, m, l, shutdown) =
        (firmware.clone(), Arc::clone(registry), mqtt.clone(), leadership.clone(), tasks.shutdown().clone());
    tasks.restartable("upgrade orders", move || {
        let (f, r, m) = (f.clone(), Arc::clone(&r), m.clone());
        leader::while_leading("upgrade orders", l.clone(), shutdown.clone(), move |term| {
            firmware::send_upgrade_orders(f.clone(), Arc::clone(&r), m.clone(), term)
        })
    });
}

/// What a replica does when it takes the lead, before it serves the leader's paths and runs
/// the leader's tasks: the firmware images, campaigns and bulk operations are read again (they
/// are the previous leader's); bulk orders the previous leader had not sent fail with a reason.
pub(crate) fn takeover(firmware: &firmware::Firmware, bulk: &bulk::BulkOps) -> leader::Takeover {
    let (firmware, bulk) = (firmware.clone(), bulk.clone());
    Box::new(move || {
        firmware.reload().context("reading the firmware images and campaigns")?;
        bulk.reload().context("reading the bulk operations")?;
        Ok(())
    })
}

/// Sends bulk operations' orders, paced, while this replica leads (see [`takeover`]).
pub(crate) fn start_bulk_sender(
    bulk: &bulk::BulkOps,
    registry: &Arc<registry::Registry>,
    mqtt: &neosens_runtime::mqtt::MqttHandle,
    leadership: &leader::Leadership,
    tasks: &mut neosens_runtime::supervisor::Supervisor,
) {
    let (b, r, m, l, stop) =
        (bulk.clone(), Arc::clone(registry), mqtt.clone(), leadership.clone(), tasks.shutdown().clone());
    tasks.restartable("bulk orders", move || {
        let (b, r, m) = (b.clone(), Arc::clone(&r), m.clone());
        leader::while_leading("bulk orders", l.clone(), stop.clone(), move |term| {
            let (b, r, m) = (b.clone(), Arc::clone(&r), m.clone());
            b.run_sender(r, m, term)
        })
    });
}

async fn follow_campaigns(
    firmware: firmware::Firmware,
    registry: Arc<registry::Registry>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(firmware::SCHEDULE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (f, r) = (firmware.clone(), Arc::clone(&registry));
        let pass = move || {
            let now = model::Timestamp::now();
            let report = f.follow(&r, now)?;
            f.sample_census(&r, now)?;
            Ok::<_, firmware::FirmwareError>(report)
        };
        match neosens_runtime::blocking::run(pass).await {
            Ok(report) if report != firmware::FollowReport::default() => {
                tracing::debug!(?report, "firmware campaigns followed");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "following the firmware campaigns failed; retrying at the next tick")
            }
        }
    }
}

//! Benchmark of the device-state tracker: 100k devices, each reporting every 30 minutes (a few
//! late), two hours of campus life replayed as fast as possible. Reports the CPU per status and
//! the share of one core the tracker needs at the real rate.
//!
//! Run: `cargo bench -p neosens-central --bench tracker` (or `scripts/bench`).

use std::time::Instant;

use neosens_central::monitor::tracker::{Tracker, Watched};
use neosens_protocol::ids::{BuildingId, DeviceId};

const DEVICES: u32 = 100_000;
const PERIOD_MS: i64 = 30 * 60 * 1000;
const HOURS: i64 = 2;

fn main() {
    let id = |n: u32| {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&n.to_be_bytes());
        DeviceId::from_bytes(b)
    };
    let building = |n: u32| Some(BuildingId::from_bytes([(n % 200) as u8; 16]));
    // Every device's statuses over the window: every 30 min from a random offset; one in 50 is
    // 35 minutes late once (an outage, an alert, a recovery).
    let mut events: Vec<(i64, u32)> = Vec::new();
    for n in 0..DEVICES {
        let offset = i64::from(fastrand::u32(..)) % PERIOD_MS;
        let mut t = offset;
        let late = n % 50 == 0;
        let mut k = 0;
        while t < HOURS * 3_600_000 {
            events.push((t, n));
            k += 1;
            t += PERIOD_MS + if late && k == 1 { 35 * 60 * 1000 } else { fastrand::i64(-5_000..5_000) };
        }
    }
    events.sort_unstable();

    let started = Instant::now();
    let mut tracker = Tracker::new(0);
    let mut changes = Vec::new();
    for n in 0..DEVICES {
        tracker.watch(
            id(n),
            Watched { building: building(n), threshold_ms: PERIOD_MS, last_seen: Some(0) },
            0,
            &mut changes,
        );
    }
    let setup = started.elapsed();
    let (mut outdated, mut opened, mut resolved) = (0, 0, 0);
    let mut next_tick = 1_000;
    let replay = Instant::now();
    for (t, n) in &events {
        while next_tick <= *t {
            tracker.tick(next_tick, &mut changes);
            next_tick += 1_000;
        }
        tracker.seen(id(*n), *t, *t, &mut changes);
        for c in changes.drain(..) {
            match c {
                neosens_central::monitor::tracker::Change::Outdated(_) => outdated += 1,
                neosens_central::monitor::tracker::Change::Opened(_) => opened += 1,
                neosens_central::monitor::tracker::Change::Resolved(_) => resolved += 1,
                _ => {}
            }
        }
    }
    let elapsed = replay.elapsed();
    let window_s = (HOURS * 3600) as f64;
    println!("neosens-central state tracker: {DEVICES} devices, a status every 30 min, {HOURS} h replayed");
    println!("loading {DEVICES} devices: {:.1} ms", setup.as_secs_f64() * 1000.0);
    println!(
        "{} statuses and {} one-second ticks in {:.3} s: {:.2} µs per status",
        events.len(),
        (HOURS * 3600),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / events.len() as f64
    );
    println!(
        "at the real rate ({:.1} statuses/s): {:.4} % of one core",
        events.len() as f64 / window_s,
        100.0 * elapsed.as_secs_f64() / window_s
    );
    println!(
        "transitions: {outdated} outdated, {opened} alerts opened, {resolved} resolved (grouped by building)"
    );
}

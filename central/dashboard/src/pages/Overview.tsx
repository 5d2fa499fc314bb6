// The fleet at a glance: sites → buildings → rooms as tiles coloured by their worst state
// (outdated red, never seen grey), refreshed every 3 s through an ETag (no transfer when
// nothing changed). Each tile leads to the devices it counts.
import type { Counts, FleetSummary } from "../api";
import { usePolled } from "../lib/hooks";
import { describe, totalOf, worstState } from "../lib/fleet";
import { hrefOf } from "../lib/router";

function CountBadges({ c }: { c: Counts }) {
  return (
    <span className="badges">
      {c.outdated > 0 && <span className="badge outdated">{c.outdated} outdated</span>}
      {c.never_seen > 0 && <span className="badge never_seen">{c.never_seen} never seen</span>}
      <span className="badge ok">{c.ok} ok</span>
      {c.disabled > 0 && <span className="badge disabled">{c.disabled} disabled</span>}
    </span>
  );
}

export function Overview() {
  const { data, error } = usePolled<FleetSummary>("/fleet", 3_000, true);
  if (!data) return <p className="loading">{error ? `Cannot load the fleet: ${error}` : "Loading the fleet…"}</p>;
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Fleet</h1>
      {error && <p className="error" role="alert">Live updates interrupted: {error}</p>}
      <p className="summary" data-testid="fleet-total">
        {totalOf(data.total)} device{totalOf(data.total) === 1 ? "" : "s"}: <CountBadges c={data.total} />
      </p>
      {data.sites.map((site) => (
        <section key={site.id} className="site" aria-labelledby={`site-${site.id}`}>
          <h2 id={`site-${site.id}`}>
            <a href={hrefOf(["devices"], { site: site.slug })}>{site.name}</a> <CountBadges c={site.counts} />
            {site.disconnected && (
              <span className="badge disconnected" title="Its gateway is out of reach: statuses wait on the gateway and arrive when the link is back; no outage alert meanwhile">
                disconnected
              </span>
            )}
          </h2>
          <div className="buildings">
            {site.buildings.map((b) => (
              <article key={b.id} className={`building state-${worstState(b.counts)}`} aria-labelledby={`b-${b.id}`}>
                <h3 id={`b-${b.id}`}>
                  <a href={hrefOf(["devices"], { building: b.id })}>{b.name}</a>
                  {b.disconnected && <span className="badge disconnected">disconnected</span>}
                </h3>
                <p className="building-counts">{describe(b.counts)}</p>
                <ul className="rooms">
                  {b.rooms.map((r) => (
                    <li key={r.id}>
                      <a
                        className={`tile state-${worstState(r.counts)}`}
                        href={hrefOf(["devices"], { room: r.id })}
                        title={`${b.name} / ${r.name}: ${describe(r.counts)}`}
                        aria-label={`Room ${r.name}: ${describe(r.counts)}`}
                        data-room={r.name}
                      >
                        <span className="tile-name">{r.name}</span>
                        <span className="tile-count">
                          {r.counts.outdated > 0 ? `${r.counts.outdated}/${totalOf(r.counts)}` : totalOf(r.counts)}
                        </span>
                      </a>
                    </li>
                  ))}
                </ul>
              </article>
            ))}
          </div>
        </section>
      ))}
      {totalOf(data.unplaced) > 0 && (
        <p>
          Devices without a room: <CountBadges c={data.unplaced} />
        </p>
      )}
      <p className="legend" aria-hidden="true">
        <span className="tile state-outdated">outdated</span> <span className="tile state-never_seen">never seen</span>{" "}
        <span className="tile state-ok">ok</span> <span className="tile state-disabled">disabled</span>
      </p>
    </section>
  );
}

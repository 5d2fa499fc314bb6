// Registry editing: sites, buildings, rooms, device types, devices, gateways, users.
// Structure edits need the admin role; devices need operator (central enforces both).
import { hrefOf } from "../lib/router";
import { can, useSession } from "../session";
import { Sites, Buildings, Rooms } from "./registry/Locations";
import { Types } from "./registry/Types";
import { NewDevice } from "./registry/NewDevice";
import { Unclaimed } from "./registry/Unclaimed";
import { Gateways } from "./registry/Gateways";
import { Users } from "./registry/Users";

const TABS = [
  { id: "sites", label: "Sites" },
  { id: "buildings", label: "Buildings" },
  { id: "rooms", label: "Rooms" },
  { id: "types", label: "Device types" },
  { id: "devices", label: "New device" },
  { id: "unclaimed", label: "Unclaimed devices" },
  { id: "gateways", label: "Gateways" },
  { id: "users", label: "Users" },
];

export function Registry({ tab }: { tab: string }) {
  const session = useSession();
  const current = TABS.find((t) => t.id === tab) ?? TABS[0];
  let body;
  switch (current.id) {
    case "buildings":
      body = <Buildings />;
      break;
    case "rooms":
      body = <Rooms />;
      break;
    case "types":
      body = <Types />;
      break;
    case "devices":
      body = <NewDevice />;
      break;
    case "unclaimed":
      body = <Unclaimed />;
      break;
    case "gateways":
      body = <Gateways />;
      break;
    case "users":
      body = can(session, "admin") ? <Users /> : <p>Only admins manage users.</p>;
      break;
    default:
      body = <Sites />;
  }
  return (
    <section aria-labelledby="registry-title">
      <h1 id="registry-title">Registry</h1>
      {!can(session, "admin") && <p className="note">You can read the registry; changing its structure needs the admin role.</p>}
      <nav className="tabs" aria-label="Registry sections">
        {TABS.map((t) => (
          <a key={t.id} href={hrefOf(["registry", t.id])} aria-current={t.id === current.id ? "page" : undefined}>
            {t.label}
          </a>
        ))}
      </nav>
      {body}
    </section>
  );
}

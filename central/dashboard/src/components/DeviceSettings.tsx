// Editing a device's placement and settings: description, type, main room, its own outdated
// threshold, and a custom MQTT broker (for devices that must not use central's default).
import { useEffect, useState, type FormEvent } from "react";
import { api, ApiError, type Device } from "../api";
import { roomLabel, type Lookups } from "./lookups";
import { Select } from "./Select";

export function DeviceSettings({ device, lookups, onSaved }: { device: Device; lookups: Lookups; onSaved: () => void }) {
  const [description, setDescription] = useState(device.description);
  const [type, setType] = useState(device.type);
  const [room, setRoom] = useState(device.rooms[0]?.id ?? "");
  const [threshold, setThreshold] = useState(device.outdated_after_s ? String(device.outdated_after_s) : "");
  const [server, setServer] = useState(device.mqtt?.server ?? "");
  const [port, setPort] = useState(device.mqtt ? String(device.mqtt.port) : "1883");
  const [error, setError] = useState<{ field: string | null; message: string } | null>(null);
  const [saved, setSaved] = useState(false);

  useEffect(() => {
    setDescription(device.description);
    setType(device.type);
    setRoom(device.rooms[0]?.id ?? "");
    setThreshold(device.outdated_after_s ? String(device.outdated_after_s) : "");
    setServer(device.mqtt?.server ?? "");
    setPort(device.mqtt ? String(device.mqtt.port) : "1883");
  }, [device.id]); // eslint-disable-line react-hooks/exhaustive-deps

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    const portNumber = Number(port);
    if (server && (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535)) {
      setError({ field: "mqtt", message: "the port is a number from 1 to 65535" });
      return;
    }
    // Other rooms of the device stay, after the chosen main room.
    const others = device.rooms.map((r) => r.id).filter((id) => id !== room);
    try {
      await api("PATCH", `/devices/${encodeURIComponent(device.id)}`, {
        description,
        type,
        rooms: room ? [room, ...others] : others,
        outdated_after_s: threshold ? Number(threshold) : null,
        mqtt: server ? { server, port: portNumber } : null,
      });
      setError(null);
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(err instanceof ApiError ? { field: err.field ?? null, message: err.message } : { field: null, message: String(err) });
    }
  };

  const invalid = (field: string) => (error?.field === field ? true : undefined);
  return (
    <form onSubmit={save} className="stack-form" aria-label="Device settings">
      <div className="inline-form">
        <label>
          Description
          <input value={description} onChange={(e) => setDescription(e.target.value)} aria-invalid={invalid("description")} />
        </label>
        <Select label="Type" value={type} onChange={setType} invalid={invalid("type")} choices={typeChoices(lookups, device.type)} />
        <Select label="Main room" value={room} onChange={setRoom} invalid={invalid("rooms")} empty="none" choices={lookups.rooms.map((r) => ({ value: r.id, label: roomLabel(lookups, r.id) }))} />
        <label>
          Outdated after (s; empty: the type's)
          <input type="number" min={60} value={threshold} onChange={(e) => setThreshold(e.target.value)} aria-invalid={invalid("outdated_after_s")} />
        </label>
      </div>
      <div className="inline-form">
        <label>
          Custom MQTT broker (empty: central's default)
          <input value={server} placeholder="neocampus.univ-tlse3.fr" onChange={(e) => setServer(e.target.value)} aria-invalid={invalid("mqtt")} />
        </label>
        <label>
          Port
          <input type="number" min={1} max={65535} value={port} disabled={!server} onChange={(e) => setPort(e.target.value)} />
        </label>
        <button type="submit">Save settings</button>
      </div>
      <p role="status" className={error ? "error" : "ok-text"}>
        {error ? `${error.field ? `${error.field}: ` : ""}${error.message}` : saved ? "Saved." : ""}
      </p>
    </form>
  );
}

/** The types to choose from, the device's own always among them (a type created after the
 * lists were loaded would otherwise show as the first choice, and saving would change it). */
function typeChoices(lookups: Lookups, current: string) {
  const names = lookups.types.map((t) => t.name);
  if (!names.includes(current)) names.push(current);
  return names.map((name) => ({ value: name, label: name }));
}

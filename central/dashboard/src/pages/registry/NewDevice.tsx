import { useState } from "react";
import { api, type Device } from "../../api";
import { parseUid } from "../../lib/uid";
import { navigate } from "../../lib/router";
import { roomLabel, useLookups } from "../../components/lookups";
import { Select } from "../../components/Select";
import { FormError, useSubmit } from "./common";

export function NewDevice() {
  const lookups = useLookups();
  const [uid, setUid] = useState("");
  const [type, setType] = useState("");
  const [room, setRoom] = useState("");
  const [description, setDescription] = useState("");
  const parsed = uid ? parseUid(uid) : null;
  const uidError = parsed && "error" in parsed ? parsed.error : null;
  let created: Device | null = null;

  const form = useSubmit(
    async () => {
      const p = parseUid(uid);
      if ("error" in p) throw new Error(p.error);
      created = await api<Device>("POST", "/devices", { uid: p.uid, type, rooms: room ? [room] : [], description });
    },
    () => {
      if (created) navigate(["devices", created.uid]);
    },
  );

  return (
    <form className="stack-form" onSubmit={form.submit} aria-label="New device">
      <div className="inline-form">
        <label>
          MAC address or DevEUI
          <input
            required
            value={uid}
            className="mono"
            placeholder="24:0a:c4:12:34:56"
            onChange={(e) => setUid(e.target.value)}
            aria-invalid={!!uidError || form.field === "uid"}
            aria-describedby="uid-help"
          />
        </label>
        <span id="uid-help" className={uidError ? "error" : "hint"}>
          {uidError ?? (parsed && "uid" in parsed ? `${parsed.kind === "ethernet" ? "MAC" : "DevEUI"} ${parsed.uid}` : "12 hex digits (MAC) or 16 (DevEUI)")}
        </span>
      </div>
      <div className="inline-form">
        <Select label="Type" required value={type} onChange={setType} empty="choose…" choices={lookups.types.map((t) => ({ value: t.name, label: t.name }))} />
        <Select label="Room" value={room} onChange={setRoom} empty="none yet" choices={lookups.rooms.map((r) => ({ value: r.id, label: roomLabel(lookups, r.id) }))} />
        <label>
          Description
          <input value={description} onChange={(e) => setDescription(e.target.value)} />
        </label>
      </div>
      <button type="submit" disabled={form.busy || !!uidError}>
        Register device
      </button>
      <FormError state={form} />
    </form>
  );
}

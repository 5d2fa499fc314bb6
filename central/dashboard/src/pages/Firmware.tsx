// Firmware: the images, the campaigns rolling them out (live progress per wave, actions), a
// form for a new campaign, and the fleet's revisions over time.
import { useState } from "react";
import { api, upload, type Campaign, type FirmwareImage, type Items, type Revisions } from "../api";
import { usePolled, useNow } from "../lib/hooks";
import { parseWaves, size } from "../lib/firmware";
import { relativeTime, absoluteTime } from "../lib/time";
import { can, useSession } from "../session";
import { useLookups } from "../components/lookups";
import { CampaignCard } from "./firmware/CampaignCard";
import { RevisionChart } from "./firmware/RevisionChart";

function UploadForm({ onDone }: { onDone: (message: string) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [hardware, setHardware] = useState("esp32");
  const [board, setBoard] = useState("neOSensor");
  const [revision, setRevision] = useState("");
  const [notes, setNotes] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!file) return;
    setBusy(true);
    try {
      const q = new URLSearchParams({ hardware, board, revision, notes });
      const image = await upload<FirmwareImage>(`/firmware?${q}`, file);
      onDone(`Image ${image.hardware}/${image.board} revision ${image.revision} uploaded.`);
    } catch (err) {
      onDone(`Upload refused: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="Upload an image">
      <label>
        File <input type="file" required onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
      </label>
      <label>
        Hardware <input value={hardware} onChange={(e) => setHardware(e.target.value)} required size={8} />
      </label>
      <label>
        Board <input value={board} onChange={(e) => setBoard(e.target.value)} required size={10} />
      </label>
      <label>
        Revision <input value={revision} onChange={(e) => setRevision(e.target.value)} required inputMode="numeric" pattern="[0-9]+" size={8} />
      </label>
      <label>
        Notes <input value={notes} onChange={(e) => setNotes(e.target.value)} />
      </label>
      <button type="submit" disabled={busy || !file}>
        Upload
      </button>
    </form>
  );
}

function CampaignForm({ images, onDone }: { images: FirmwareImage[]; onDone: (message: string) => void }) {
  const lookups = useLookups();
  const [name, setName] = useState("");
  const [image, setImage] = useState("");
  const [type, setType] = useState("");
  const [site, setSite] = useState("");
  const [waves, setWaves] = useState("1, 10, 100");
  const [threshold, setThreshold] = useState("10");
  const plan = parseWaves(waves);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!plan) return;
    try {
      const target = { ...(type ? { type } : {}), ...(site ? { site } : {}) };
      const c = await api<Campaign>("POST", "/campaigns", {
        name,
        image: image || images[0]?.sha256,
        target,
        waves: plan,
        failure_threshold_percent: Number(threshold),
      });
      onDone(`Campaign “${c.name}” started: wave 1 reaches ${c.reached} of ${c.devices} devices.`);
    } catch (err) {
      onDone(`Campaign refused: ${(err as Error).message}`);
    }
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="New campaign">
      <label>
        Name <input value={name} onChange={(e) => setName(e.target.value)} required />
      </label>
      <label>
        Image{" "}
        <select value={image} onChange={(e) => setImage(e.target.value)}>
          {images.map((i) => (
            <option key={i.sha256} value={i.sha256}>
              {i.hardware}/{i.board} {i.revision}
            </option>
          ))}
        </select>
      </label>
      <label>
        Device type{" "}
        <select value={type} onChange={(e) => setType(e.target.value)}>
          <option value="">any</option>
          {lookups.types.map((t) => (
            <option key={t.id} value={t.name}>
              {t.name}
            </option>
          ))}
        </select>
      </label>
      <label>
        Site{" "}
        <select value={site} onChange={(e) => setSite(e.target.value)}>
          <option value="">any</option>
          {lookups.sites.map((s) => (
            <option key={s.id} value={s.slug}>
              {s.name}
            </option>
          ))}
        </select>
      </label>
      <label>
        Waves (cumulative %) <input value={waves} onChange={(e) => setWaves(e.target.value)} aria-invalid={!plan} size={12} />
      </label>
      <label>
        Halt above (% failed) <input value={threshold} onChange={(e) => setThreshold(e.target.value)} inputMode="numeric" size={4} />
      </label>
      <button type="submit" disabled={!plan || images.length === 0}>
        Start campaign
      </button>
    </form>
  );
}

export function Firmware() {
  const session = useSession();
  const admin = can(session, "admin");
  const operator = can(session, "operator");
  const now = useNow();
  const images = usePolled<Items<FirmwareImage>>("/firmware", 30_000);
  const campaigns = usePolled<Items<Campaign>>("/campaigns", 3_000);
  const revisions = usePolled<Revisions>("/firmware/revisions", 60_000);
  const [message, setMessage] = useState<string | null>(null);
  const done = (m: string) => {
    setMessage(m);
    images.refresh();
    campaigns.refresh();
  };
  const remove = async (i: FirmwareImage) => {
    try {
      await api("DELETE", `/firmware/${i.sha256}`);
      done(`Image ${i.revision} deleted.`);
    } catch (e) {
      done(`Image ${i.revision}: ${(e as Error).message}`);
    }
  };
  return (
    <section aria-labelledby="firmware-title">
      <h1 id="firmware-title">Firmware</h1>
      {message && <p role="status">{message}</p>}
      <h2>Campaigns</h2>
      {campaigns.error && <p className="error" role="alert">Cannot load campaigns: {campaigns.error}</p>}
      {operator && images.data && <CampaignForm images={images.data.items} onDone={done} />}
      {campaigns.data && campaigns.data.items.length === 0 && <p>No campaign yet.</p>}
      <ul className="campaigns">
        {campaigns.data?.items.map((c) => <CampaignCard key={c.id} campaign={c} operator={operator} now={now} onChanged={done} />)}
      </ul>
      <h2>Images</h2>
      {admin && <UploadForm onDone={done} />}
      {images.error && <p className="error" role="alert">Cannot load images: {images.error}</p>}
      <table aria-label="Images">
        <thead>
          <tr>
            <th>Hardware / board</th>
            <th>Revision</th>
            <th>Size</th>
            <th>SHA-256</th>
            <th>Uploaded</th>
            <th>Notes</th>
            {admin && <th />}
          </tr>
        </thead>
        <tbody>
          {images.data?.items.map((i) => (
            <tr key={i.sha256}>
              <td>
                {i.hardware}/{i.board}
              </td>
              <td>{i.revision}</td>
              <td>{size(i.size)}</td>
              <td>
                <code title={i.sha256}>{i.sha256.slice(0, 12)}</code>
              </td>
              <td title={absoluteTime(i.uploaded_at)}>
                {relativeTime(i.uploaded_at, now)} by {i.uploaded_by}
              </td>
              <td>{i.notes}</td>
              {admin && (
                <td>
                  <button type="button" className="link" onClick={() => remove(i)}>
                    Delete
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Fleet revisions</h2>
      {revisions.data && <RevisionChart data={revisions.data} />}
    </section>
  );
}

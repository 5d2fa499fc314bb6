// Devices from a CSV or JSON file: a dry run first, which lists every refused row and counts
// what would change, then the import itself on confirmation (operators).
import { useState, type FormEvent } from "react";
import { upload, type ImportReport } from "../api";

function Summary({ report }: { report: ImportReport }) {
  const verb = report.dry_run ? "would be" : "were";
  return (
    <p role="status" className="import-summary">
      {report.rows} rows: {report.created} devices {verb} created, {report.updated} {verb} changed,{" "}
      {report.unchanged} unchanged, {report.failed} refused.
    </p>
  );
}

export function BulkImport({ onImported }: { onImported: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [report, setReport] = useState<ImportReport | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const format = file?.name.toLowerCase().endsWith(".json") ? "json" : "csv";

  const send = async (dryRun: boolean) => {
    if (!file) return;
    setBusy(true);
    try {
      const r = await upload<ImportReport>(`/devices/import.${format}${dryRun ? "?dry_run=true" : ""}`, file);
      setReport(r);
      setError(null);
      if (!dryRun) onImported();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const check = (e: FormEvent) => {
    e.preventDefault();
    void send(true);
  };

  const ready = report?.dry_run && report.created + report.updated > 0;
  return (
    <details className="bulk-import">
      <summary>Import devices (CSV or JSON)</summary>
      <p className="meta">
        Columns: <code>uid</code>, <code>type</code>, <code>rooms</code> (base topics separated by <code>;</code>),{" "}
        <code>description</code>, <code>enabled</code>, <code>config</code> (JSON), <code>outdated_after_s</code>. An empty
        cell leaves the field as it is. The export above writes the same columns.
      </p>
      <form aria-label="Import devices" onSubmit={check} className="inline-form">
        <label>
          File
          <input
            type="file"
            accept=".csv,.json,text/csv,application/json"
            onChange={(e) => {
              setFile(e.target.files?.[0] ?? null);
              setReport(null);
            }}
          />
        </label>
        <button type="submit" disabled={!file || busy}>
          Check
        </button>
        {ready && (
          <button type="button" disabled={busy} onClick={() => void send(false)}>
            Import {report.created + report.updated} devices
          </button>
        )}
      </form>
      {error && <p className="error" role="alert">{error}</p>}
      {report && <Summary report={report} />}
      {report && report.errors.length > 0 && (
        <div className="table-wrap">
          <table className="import-errors">
            <caption>Refused rows{report.dry_run ? " (fix them and check again, or import the others)" : ""}</caption>
            <thead>
              <tr>
                <th scope="col">Row</th>
                <th scope="col">uid</th>
                <th scope="col">Field</th>
                <th scope="col">Why</th>
              </tr>
            </thead>
            <tbody>
              {report.errors.map((e) => (
                <tr key={e.row}>
                  <td>{e.row}</td>
                  <td className="mono">{e.uid}</td>
                  <td className="mono">{e.field}</td>
                  <td>{e.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </details>
  );
}

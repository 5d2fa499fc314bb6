import { afterEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { DevicePage } from "../pages/DevicePage";
import { Toasts } from "./Toasts";
import { SessionContext } from "../session";
import type { Device, Session } from "../api";

const DEVICE: Device = {
  id: "6b1c…",
  uid: "24:0a:c4:12:34:56",
  uid_kind: "ethernet",
  type: "esp32",
  type_id: "t",
  description: "hall",
  rooms: [],
  base_topic: "u4/302",
  enabled: true,
  config: [{ topic: "u4/302", modules: [] }],
  mqtt: null,
  login: "senso_240ac4123456",
  credentials_delivered: true,
  outdated_after_s: null,
  effective_outdated_after_s: 1800,
  state: "ok",
  last_seen: new Date().toISOString(),
  last_status: "running",
  last_payload: { heap: 1 },
  created_at: "",
  updated_at: "",
  lorawan: null,
  otaa: null,
};

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

const OPERATOR: Session = { user_id: "u", username: "op", role: "operator", sites: [], csrf_token: "csrf-1" };

describe("device page", () => {
  it("shows central's schema errors next to the configuration editor, sent with the CSRF token", async () => {
    const calls: { method: string; url: string; headers: Record<string, string> }[] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit = {}) => {
      calls.push({ method: init.method ?? "GET", url, headers: (init.headers ?? {}) as Record<string, string> });
      if (init.method === "PATCH") {
        return json(422, { error: { code: "schema_violation", message: "the configuration breaks its schema", details: ["schema of the device type: at '/0/modules': \"x\" is not of type \"array\""] } });
      }
      if (url.includes("/orders") || url.includes("/firmware")) return json(200, { items: [] });
      if (url.includes("/devices/")) return json(200, DEVICE);
      return json(200, { items: [] });
    });
    const { setCsrfToken } = await import("../api");
    setCsrfToken(OPERATOR.csrf_token);
    render(
      <SessionContext.Provider value={OPERATOR}>
        <DevicePage id={DEVICE.uid} />
      </SessionContext.Provider>,
    );
    const editor = await screen.findByLabelText("Configuration (zones, JSON)");
    fireEvent.change(editor, { target: { value: '[{"topic": "u4/302", "modules": "x"}]' } });
    fireEvent.click(screen.getByRole("button", { name: "Save configuration" }));
    await screen.findByText(/is not of type "array"/);
    expect(editor.getAttribute("aria-invalid")).toBe("true");
    const patch = calls.find((c) => c.method === "PATCH")!;
    expect(patch.headers["X-CSRF-Token"]).toBe("csrf-1");

    fireEvent.change(editor, { target: { value: "[not json" } });
    fireEvent.click(screen.getByRole("button", { name: "Save configuration" }));
    await screen.findByText(/not valid JSON/);
    expect(calls.filter((c) => c.method === "PATCH")).toHaveLength(1);
  });

  it("hides orders from viewers", async () => {
    vi.stubGlobal("fetch", async (url: string) => (url.includes("/orders") || url.includes("/firmware") ? json(200, { items: [] }) : url.includes("/devices/") ? json(200, DEVICE) : json(200, { items: [] })));
    render(
      <SessionContext.Provider value={{ ...OPERATOR, role: "viewer" }}>
        <DevicePage id={DEVICE.uid} />
      </SessionContext.Provider>,
    );
    await screen.findByText("Viewers cannot send orders.");
    expect(screen.queryByRole("button", { name: "Send order" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Save configuration" })).toBeNull();
  });
});

describe("alert toasts", () => {
  it("pop up alerts that open after the page loaded, not those already open", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    let alerts = [{ id: 1, kind: "outage", building: null, device: null, rule: null, detail: null, outdated: 1, total_devices: 1, opened_at: 0, resolved_at: null, ack: null, devices: [], state: "open" }];
    vi.stubGlobal("fetch", async (url: string) => (url.includes("/alerts") ? json(200, { items: alerts }) : json(200, { items: [] })));
    render(<Toasts />);
    await act(async () => {
      await vi.advanceTimersByTimeAsync(100);
    });
    expect(screen.queryByText("Outage")).toBeNull();
    alerts = [...alerts, { ...alerts[0], id: 2, outdated: 3, total_devices: 4 }];
    await act(async () => {
      await vi.advanceTimersByTimeAsync(5_100);
    });
    await waitFor(() => expect(screen.getByText(/3 of 4 devices outdated/)).toBeTruthy());
    fireEvent.click(screen.getByRole("button", { name: "Dismiss alert 2" }));
    expect(screen.queryByText(/3 of 4 devices outdated/)).toBeNull();
  });
});

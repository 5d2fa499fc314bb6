// End-to-end test of the dashboard: the real neosens-central binary (embedded storage and MQTT
// broker, on free loopback ports, in a fresh data directory), a device provisioned through the
// legacy HTTP API and publishing its status over MQTT like the firmware, and Debian's chromium
// driven headless by playwright-core.
//
//   node e2e/dashboard.e2e.mjs            (from central/dashboard; scripts/test runs it)
//
// Environment: NEOSENS_CENTRAL_BIN (default target/debug/neosens-central), CHROMIUM (default
// /usr/bin/chromium), E2E_SCREENSHOTS (default target/dashboard-e2e). Exits non-zero on the
// first failed step, with the step's name, central's log tail and a screenshot.

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import mqtt from "mqtt";
import { DEADLINE_MS, assert, freePort, log, waitFor } from "./harness.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const centralBin = process.env.NEOSENS_CENTRAL_BIN ?? join(repo, "target/debug/neosens-central");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const shots = resolve(process.env.E2E_SCREENSHOTS ?? join(repo, "target/dashboard-e2e"));
const ADMIN_TOKEN = "e2e-admin-token-0123456789";
const ADMIN_PASSWORD = "e2e admin password";
const MAC = "24:0a:c4:e2:e0:01";

const httpPort = await freePort();
const mqttPort = await freePort();
const base = `http://127.0.0.1:${httpPort}`;
const dataDir = mkdtempSync(join(tmpdir(), "neosens-e2e-"));
rmSync(join(shots, "failure.png"), { force: true });
mkdirSync(shots, { recursive: true });
let centralLog = "";
const central = spawn(centralBin, [], {
  env: {
    ...process.env,
    NEOSENS_DATA_DIR: dataDir,
    NEOSENS_HTTP_BIND: `127.0.0.1:${httpPort}`,
    NEOSENS_EMBEDDED_MQTT_BIND: `127.0.0.1:${mqttPort}`,
    NEOSENS_ADMIN_TOKEN: ADMIN_TOKEN,
    NEOSENS_ADMIN_PASSWORD: ADMIN_PASSWORD,
    NEOSENS_LOG: "info",
  },
  stdio: ["ignore", "pipe", "pipe"],
});
central.stdout.on("data", (d) => (centralLog += d));
central.stderr.on("data", (d) => (centralLog += d));
central.once("exit", (code, signal) => log(`neosens-central exited (${code ?? signal})`));

async function admin(method, path, body) {
  const r = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

let browser;
let page;
let device;
let room303;
const consoleErrors = [];

async function step(name, body) {
  log(`step: ${name}`);
  try {
    await body();
  } catch (e) {
    console.error(`\nFAILED at step "${name}": ${e.stack ?? e}`);
    if (page) await page.screenshot({ path: join(shots, "failure.png"), fullPage: true }).catch(() => {});
    console.error(`--- neosens-central log (tail) ---\n${centralLog.split("\n").slice(-40).join("\n")}`);
    throw e;
  }
}

async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** The device publishes a status on <room>/device, as the neOSensor firmware does. */
async function publishStatus(client, heap) {
  const status = {
    frequency: 1800,
    time: new Date().toISOString(),
    status: "running",
    modules: 3,
    heap,
    hardware: "esp32",
    firmware: 231027,
    board: "neOSensor",
    board_rev: 1.2,
    unitID: MAC,
  };
  await client.publishAsync(`${device.base_topic}/device`, JSON.stringify(status), { qos: 0 });
}

async function deviceRow() {
  return page.locator(`tr[data-uid="${device.uid}"]`);
}

let failed = false;
let client;
try {
  await step("central starts", async () => {
    await waitFor("central's /healthz", async () => (await fetch(`${base}/healthz`)).ok);
  });

  await step("registry: building, room, type with a schema, device with a 60 s threshold", async () => {
    const building = await admin("POST", "/buildings", { name: "U4", description: "Université Paul Sabatier, U4" });
    const room = await admin("POST", "/rooms", { building: building.id, name: "302", description: "" });
    room303 = await admin("POST", "/rooms", { building: building.id, name: "303", description: "" });
    await admin("POST", "/device-types", {
      name: "esp32",
      description: "neOSensor ESP32",
      // At most two sensor modules per zone: what the e2e breaks on purpose.
      config_schema: { type: "array", items: { type: "object", properties: { modules: { type: "array", maxItems: 2 } } } },
    });
    device = await admin("POST", "/devices", { uid: MAC, type: "esp32", rooms: [room.id], description: "e2e sensor", outdated_after_s: 60 });
    await admin("POST", "/users", { username: "vera", password: "viewer password", role: "viewer" });
  });

  await step("a gateway enrols and reports two packet forwarders, one silent for 400 s", async () => {
    const buildings = await admin("GET", "/buildings");
    const gw = await admin("POST", "/gateways", { name: "gw-u4", scope: { buildings: [buildings.items[0].id] } });
    const { token } = await admin("POST", `/gateways/${gw.id}/enrolment`);
    const json = { "Content-Type": "application/json" };
    const enrolled = await fetch(`${base}/api/v1/edge/enroll`, { method: "POST", headers: json, body: JSON.stringify({ token }) });
    assert(enrolled.ok, `enrolment answered ${enrolled.status}`);
    const { secret } = await enrolled.json();
    const forwarder = (eui, silent_s) => ({
      eui, silent_s, pull_age_s: silent_s, stat_age_s: null, datagrams: 12, uplinks: 40, rx_received: 0, rx_ok: 0,
      rx_forwarded: 0, tx_requested: 0, tx_emitted: 0, ack_ratio: null, position: null,
    });
    // What the agent runs with: its own file sets the sensor period (it wins over central's).
    const config = { effective: { agent: { status_period_s: 300 }, hal: { sensor_period_s: 120 } }, overridden: ["hal.sensor_period_s"], rejected: null, restart_pending: false };
    const report = { outbox_depth: 0, outbox_oldest_s: 0, outbox_dropped: 0, version: "e2e", forwarders: [forwarder("aa555a0000000101", 400), forwarder("aa555a0000000102", 3)], config };
    const r = await fetch(`${base}/api/v1/edge/health`, { method: "POST", headers: { ...json, Authorization: `Bearer ${secret}` }, body: JSON.stringify(report) });
    assert(r.status === 204, `the health report answered ${r.status}`);
  });

  await step("the device provisions itself and connects to the broker", async () => {
    const r = await fetch(`${base}/device/credentials?mac=${MAC}`);
    assert(r.status === 200, `credentials answered ${r.status}`);
    const creds = await r.json();
    assert(creds.login && creds.password, "a first call gets login and password");
    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      username: creds.login,
      password: creds.password,
      clientId: `${MAC}_device`,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
  });

  await step("the browser starts", async () => {
    const userDataDir = mkdtempSync(join(tmpdir(), "neosens-e2e-chromium-"));
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1280, height: 860 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on("console", (m) => {
      if (m.type() !== "error") return;
      // Expected refusals show as failed loads: the session probe before sign-in (401) and
      // the configuration the test breaks on purpose (422). Anything else is a defect.
      if (/Failed to load resource: the server responded with a status of (401|422)/.test(m.text())) return;
      consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
  });

  await step("the API reference renders at /api/docs, without signing in, under the CSP", async () => {
    // Every request the page makes, and every CSP violation it reports, whatever the console says.
    const requests = [];
    const onRequest = (r) => requests.push(r.url());
    page.on("request", onRequest);
    await page.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener("securitypolicyviolation", (e) =>
        window.__cspViolations.push(`${e.violatedDirective}: ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`),
      );
    });
    const errorsBefore = consoleErrors.length;
    const response = await page.goto(`${base}/api/docs`);
    assert(response.status() === 200, `/api/docs answered ${response.status()}`);
    const csp = response.headers()["content-security-policy"] ?? "";
    assert(csp.includes("script-src 'self';") && !csp.includes("unsafe"), `a strict CSP on /api/docs: ${csp}`);
    // Redoc renders the document: the API's title, a tag, and an operation's path. When it
    // does not, the CSP's refusals and the console usually say why: they go with the failure.
    try {
      await page.getByRole("heading", { name: /neosens central API/ }).waitFor({ timeout: DEADLINE_MS });
      await page.getByText("/api/v1/devices/{id}/credentials/reset").first().waitFor({ state: "attached", timeout: DEADLINE_MS });
      await page.locator('[role="menuitem"]', { hasText: "devices" }).first().waitFor({ timeout: DEADLINE_MS });
    } catch (e) {
      const violations = await page.evaluate(() => window.__cspViolations).catch(() => []);
      throw new Error(`${e.message}\nCSP violations: ${violations.join("; ") || "none"}\nconsole errors: ${consoleErrors.slice(errorsBefore).join("; ") || "none"}`);
    }
    // The viewport only: the whole reference is a page some 65 000 pixels high.
    await page.screenshot({ path: join(shots, "00-api-docs.png") });
    const violations = await page.evaluate(() => window.__cspViolations);
    assert(violations.length === 0, `no CSP violation on /api/docs:\n${violations.join("\n")}`);
    assert(consoleErrors.length === errorsBefore, `no console error on /api/docs:\n${consoleErrors.slice(errorsBefore).join("\n")}`);
    const elsewhere = requests.filter((u) => !u.startsWith(`${base}/`) && !u.startsWith("data:"));
    assert(elsewhere.length === 0, `the reference loads nothing from elsewhere: ${elsewhere.join(", ")}`);
    assert(requests.includes(`${base}/api/v1/openapi.json`), `the reference fetched the document: ${requests.join(", ")}`);
    page.off("request", onRequest);
  });

  await step("sign in", async () => {
    await page.goto(base);
    await page.getByLabel("User name").fill("admin");
    await page.getByLabel("Password").fill("wrong password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Wrong user name or password.").waitFor({ timeout: DEADLINE_MS });
    await shot("01-sign-in");
    await page.getByLabel("Password").fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor({ timeout: DEADLINE_MS });
  });

  await step("overview: the never-seen device is grey, then green once its status arrives", async () => {
    const tile = page.locator('a[data-room="302"]');
    await waitFor("room 302 never seen", async () => (await tile.getAttribute("class"))?.includes("state-never_seen"));
    await publishStatus(client, 171204);
    await waitFor("room 302 ok", async () => (await tile.getAttribute("class"))?.includes("state-ok"));
    await shot("02-overview");
  });

  await step("device table: add the status field 'heap' as a column, kept after a reload", async () => {
    await page.getByRole("link", { name: "Devices", exact: true }).click();
    const row = await deviceRow();
    await row.waitFor({ timeout: DEADLINE_MS });
    assert((await row.getAttribute("data-state")) === "ok", "the device is ok in the table");
    await page.getByRole("button", { name: "Columns" }).click();
    await page.getByLabel("Status field").fill("heap");
    await page.getByRole("button", { name: "Add column" }).click();
    await page.getByRole("columnheader", { name: "heap" }).waitFor({ timeout: DEADLINE_MS });
    await waitFor("the heap cell", async () => (await row.innerText()).includes("171204"));
    await shot("03-devices-with-heap-column");
    await page.reload();
    await page.getByRole("columnheader", { name: "heap" }).waitFor({ timeout: DEADLINE_MS });
  });

  await step("device page: send an order and see it recorded", async () => {
    await page.locator(`tr[data-uid="${device.uid}"] a`).first().click();
    await page.getByRole("heading", { name: new RegExp(device.uid) }).waitFor({ timeout: DEADLINE_MS });
    await page.getByLabel("Order").selectOption("frequency");
    await page.getByLabel("Period (s)").fill("900");
    await page.getByRole("button", { name: "Send order" }).click();
    await page.getByText(/frequency sent on .*\/device\/command/).waitFor({ timeout: DEADLINE_MS });
    const history = page.locator("table.orders tbody tr").first();
    await waitFor("the order in the history", async () => {
      const text = await history.innerText();
      return text.includes("frequency") && text.includes("sent") && text.includes("admin");
    });
    const recorded = await admin("GET", `/devices/${MAC}/orders`);
    assert(recorded.items[0].order === "frequency" && recorded.items[0].by === "admin", "central recorded the order, by the signed-in user");
  });

  await step("a LoRaWAN node's page queues a downlink", async () => {
    await admin("POST", "/device-types", { name: "lorawan_node", description: "LoRaWAN node", orders: [] });
    // In room 303: room 302's tiles follow the sensor alone in the steps that follow.
    const node = await admin("POST", "/devices", {
      uid: "70B3D57ED00E2E01",
      type: "lorawan_node",
      rooms: [room303.id],
      lorawan: { dev_addr: "26011e2e", nwk_s_key: "00".repeat(16), app_s_key: "11".repeat(16), codec: "hex" },
    });
    await page.goto(`${base}/#/devices/${encodeURIComponent(node.uid)}`);
    await page.getByRole("heading", { name: /70B3D57ED00E2E01/i }).waitFor({ timeout: DEADLINE_MS });
    await page.getByLabel("Payload (hex)").fill("01 02");
    await page.getByLabel("FPort").fill("10");
    await page.getByLabel("Confirmed").check();
    await page.getByRole("button", { name: "Queue downlink" }).click();
    await page.getByText(/downlink [0-9a-f]{12}: published: waits for the node's next uplink/).waitFor({ timeout: DEADLINE_MS });
    // Published on the node's command topic, for the gateways of its scope (the Rust end-to-end
    // test follows it through a gateway to the node).
    const [order] = (await admin("GET", `/devices/${node.id}/orders`)).items;
    assert(order.topic === "u4/303/70b3d57ed00e2e01/command", order.topic);
    const command = JSON.parse(order.payload);
    assert(command.data === "0102" && command.port === 10 && command.confirmed === true && command.ref === order.dest, order.payload);
    const row = page.locator("table.orders tbody tr").first();
    await waitFor("the downlink in the history, with its reference", async () => (await row.innerText()).includes(order.dest));
    await shot("10-lorawan-node-downlink");
    // Back to the sensor's page for the steps that follow.
    await page.goto(`${base}/#/devices/${encodeURIComponent(device.uid)}`);
    await page.getByRole("heading", { name: new RegExp(device.uid) }).waitFor({ timeout: DEADLINE_MS });
  });

  await step("device page: a configuration breaking the type's schema is refused inline", async () => {
    const broken = [
      {
        topic: device.base_topic,
        modules: ["temperature", "humidity", "luminosity"].map((m, i) => ({ module: m, unit: `auto_${i}`, params: [] })),
      },
    ];
    await page.getByLabel("Configuration (zones, JSON)").fill(JSON.stringify(broken, null, 2));
    await page.getByRole("button", { name: "Save configuration" }).click();
    await page.locator("#config-errors").getByText(/schema of the device type/).waitFor({ timeout: DEADLINE_MS });
    assert((await page.getByLabel("Configuration (zones, JSON)").getAttribute("aria-invalid")) === "true", "the editor is marked invalid");
    await shot("04-device-schema-error");
    const stored = await admin("GET", `/devices/${MAC}`);
    assert(JSON.stringify(stored.config).split("auto_").length < 4, "the refused configuration was not stored");
  });

  await step("the device turns red once past its 60 s threshold", async () => {
    const badge = page.getByTestId("device-state");
    await waitFor("state outdated", async () => (await badge.innerText()) === "outdated", 90_000);
    await shot("05-device-outdated");
    await page.getByRole("link", { name: "Overview" }).click();
    const tile = page.locator('a[data-room="302"]');
    await waitFor("room 302 red", async () => (await tile.getAttribute("class"))?.includes("state-outdated"));
    await shot("06-overview-outdated");
  });

  await step("a new status brings it back", async () => {
    await publishStatus(client, 170000);
    const tile = page.locator('a[data-room="302"]');
    await waitFor("room 302 ok again", async () => (await tile.getAttribute("class"))?.includes("state-ok"));
    await page.locator('a[data-room="302"]').click();
    const row = await deviceRow();
    await waitFor("row ok again", async () => (await row.getAttribute("data-state")) === "ok");
  });

  await step("device timeline: statuses charted, the order and the changes", async () => {
    await page.goto(`${base}/#/devices/${encodeURIComponent(device.uid)}`);
    const timeline = page.getByRole("article", { name: "Timeline" });
    await timeline.getByRole("img", { name: /^heap over time, [2-9] statuses/ }).waitFor({ timeout: DEADLINE_MS });
    const kinds = async () => timeline.locator("li.event").evaluateAll((lis) => lis.map((li) => li.getAttribute("data-kind")));
    await waitFor("statuses, the order and the registration", async () => {
      const k = await kinds();
      return ["status", "order", "change"].every((kind) => k.includes(kind));
    });
    assert((await timeline.locator("li.event.order").first().innerText()).includes("frequency 900 by admin: sent"), "the order on the timeline");
    await shot("05-device-timeline");
  });

  await step("alerts page and registry load; the layout holds on a phone", async () => {
    await page.getByRole("link", { name: "Alerts", exact: true }).click();
    await page.getByRole("heading", { name: "Alerts" }).waitFor({ timeout: DEADLINE_MS });
    await page.getByRole("link", { name: "Registry" }).click();
    await page.getByRole("link", { name: "Device types" }).click();
    await page.getByRole("cell", { name: "esp32", exact: true }).waitFor({ timeout: DEADLINE_MS });
    await shot("07-registry-types");
    // The gateway's forwarders, the silent one marked; its alert, opened by the monitor.
    await page.getByRole("link", { name: "Gateways" }).click();
    const forwarders = page.getByRole("list", { name: "packet forwarders" });
    await waitFor("the silent forwarder", async () => /aa555a0000000101\s+silent/.test(await forwarders.innerText()));
    assert(/aa555a0000000102\s+heard/.test(await forwarders.innerText()), "the other forwarder is heard");
    await shot("07-registry-gateways");
    // Its settings: a value that does not hold is refused with its key; then saved.
    await page.getByRole("button", { name: "Settings of gateway gw-u4" }).click();
    const settings = page.getByRole("form", { name: "Settings of gateway gw-u4" });
    await settings.getByText("the gateway's file wins", { exact: true }).waitFor({ timeout: DEADLINE_MS });
    await settings.getByLabel("agent.status_period_s").fill("6o");
    await settings.getByRole("button", { name: "Save settings" }).click();
    await settings.getByText(/a whole number/).waitFor({ timeout: DEADLINE_MS });
    await settings.getByLabel("agent.status_period_s").fill("60");
    await settings.getByLabel("hal.sensor_period_s").fill("30");
    await settings.getByLabel("lorawan.udp_bind").fill("1700");
    await settings.getByRole("button", { name: "Save settings" }).click();
    await settings.getByText(/config\.lorawan\.udp_bind/).waitFor({ timeout: DEADLINE_MS });
    await shot("07-registry-gateway-settings");
    // The refusal, as the browser logs it: expected.
    consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((m) => !/status of 400/.test(m)));
    await settings.getByLabel("lorawan.udp_bind").fill("off");
    await settings.getByRole("button", { name: "Save settings" }).click();
    await settings.waitFor({ state: "detached", timeout: DEADLINE_MS });
    const gws = await admin("GET", "/gateways");
    const saved = gws.items.find((g) => g.name === "gw-u4").config;
    assert(saved.agent.status_period_s === 60 && saved.lorawan.udp_bind === "off" && saved.hal.sensor_period_s === 30, `settings saved: ${JSON.stringify(saved)}`);
    await page.getByRole("link", { name: "Alerts", exact: true }).click();
    await page.getByText(/packet forwarder aa555a0000000101 of gateway gw-u4/).first().waitFor({ timeout: 45_000 });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor({ timeout: DEADLINE_MS });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);
    await shot("08-overview-phone");
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await step("an unregistered board calling home is adopted from the inbox; its next retry gets its credentials", async () => {
    const mac = "24:0a:c4:e2:e0:99";
    const ask = () => fetch(`${base}/device/credentials?mac=${mac}`, { headers: { "User-Agent": "ESP8266HTTPClient" } });
    assert((await ask()).status === 403, "unknown: refused as the firmware expects");
    await page.getByRole("link", { name: "Registry" }).click();
    await page.getByRole("link", { name: "Unclaimed devices" }).click();
    const form = page.getByRole("form", { name: "Adopt 24:0A:C4:E2:E0:99" });
    await form.waitFor({ timeout: DEADLINE_MS });
    assert((await page.locator('tr[data-mac="24:0A:C4:E2:E0:99"]').innerText()).includes("esp8266"), "the board is told by its User-Agent");
    await form.getByLabel("Type").selectOption("esp32");
    await form.getByLabel("Room").selectOption({ index: 1 });
    await shot("09-unclaimed-devices");
    await form.getByRole("button", { name: "Adopt" }).click();
    await waitFor("the row gone", async () => (await page.locator('tr[data-mac="24:0A:C4:E2:E0:99"]').count()) === 0);
    const r = await ask();
    assert(r.status === 200, `the next retry is answered (${r.status})`);
    assert(typeof (await r.json()).password === "string", "with its first password");
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor({ timeout: DEADLINE_MS });
  });

  await step("firmware: an image uploaded, a campaign started in waves, its progress shown, then paused", async () => {
    await page.getByRole("link", { name: "Firmware" }).click();
    await page.getByRole("heading", { name: "Firmware" }).waitFor({ timeout: DEADLINE_MS });
    const image = Buffer.alloc(4096, 7);
    image[0] = 0xe9;
    const upload = page.getByRole("form", { name: "Upload an image" });
    await upload.getByLabel("File").setInputFiles({ name: "neosensor.bin", mimeType: "application/octet-stream", buffer: image });
    await upload.getByLabel("Revision").fill("240101");
    await upload.getByRole("button", { name: "Upload" }).click();
    await page.getByText("Image esp32/neOSensor revision 240101 uploaded.").waitFor({ timeout: DEADLINE_MS });
    await page.getByRole("cell", { name: "240101" }).waitFor({ timeout: DEADLINE_MS });
    const form = page.getByRole("form", { name: "New campaign" });
    await form.getByLabel("Name").fill("spring");
    await waitFor("the image offered", async () => (await form.getByLabel("Image").locator("option").count()) === 1);
    await form.getByLabel("Device type").selectOption("esp32");
    await form.getByLabel("Waves (cumulative %)").fill("50, 100");
    await form.getByRole("button", { name: "Start campaign" }).click();
    const card = page.getByRole("listitem", { name: "Campaign spring" });
    await card.waitFor({ timeout: DEADLINE_MS });
    await card.getByText("running").first().waitFor({ timeout: DEADLINE_MS });
    await card.getByRole("img", { name: /^Wave 1:/ }).waitFor({ timeout: DEADLINE_MS });
    await shot("10-firmware-campaign");
    const started = (await admin("GET", "/campaigns")).items[0];
    assert(started.waves[0].started_at && !started.waves[1].started_at, "wave 1 started, wave 2 waits");
    await card.getByRole("button", { name: "Pause" }).click();
    await card.getByText("paused").first().waitFor({ timeout: DEADLINE_MS });
    assert((await admin("GET", "/campaigns")).items[0].state === "paused", "central paused it");
    assert((await fetch(`${base}/images/esp32/neOSensor/default.json`)).status === 404, "a paused campaign is not offered");
    // The device page shows the campaign in the device's firmware history.
    await page.goto(`${base}/#/devices/${encodeURIComponent(MAC)}`);
    const history = page.getByRole("article", { name: "Firmware" });
    await history.getByText("spring").waitFor({ timeout: DEADLINE_MS });
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor({ timeout: DEADLINE_MS });
  });

  await step("devices from a CSV file: a dry run lists the refused row, then the others are imported", async () => {
    await page.getByRole("link", { name: "Devices" }).click();
    await page.getByRole("heading", { name: "Devices" }).waitFor({ timeout: DEADLINE_MS });
    await page.getByText("Import devices (CSV or JSON)").click();
    const form = page.getByRole("form", { name: "Import devices" });
    const csv = "uid,type,rooms,description\n24:0a:c4:b0:00:01,esp32,u4/303,imported one\n24:0a:c4:b0:00:02,esp32,u4/999,bad room\n24:0a:c4:b0:00:03,esp32,u4/303;u4/302,imported three\n";
    await form.getByLabel("File").setInputFiles({ name: "devices.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
    await form.getByRole("button", { name: "Check" }).click();
    await page.getByText("3 rows: 2 devices would be created, 0 would be changed, 0 unchanged, 1 refused.").waitFor({ timeout: DEADLINE_MS });
    assert((await page.locator("table.import-errors tbody tr").innerText()).includes("rooms[0]"), "the refused row names its field");
    assert((await admin("GET", "/devices?q=24:0A:C4:B0")).total === 0, "the dry run wrote nothing");
    await shot("12-bulk-import");
    await form.getByRole("button", { name: "Import 2 devices" }).click();
    await page.getByText("3 rows: 2 devices were created, 0 were changed, 0 unchanged, 1 refused.").waitFor({ timeout: DEADLINE_MS });
    await page.locator('tr[data-uid="24:0A:C4:B0:00:03"]').waitFor({ timeout: DEADLINE_MS });
    const exported = await (await page.request.get(`${base}/api/v1/devices/export.csv?q=24:0A:C4:B0`)).text();
    assert(exported.includes("24:0A:C4:B0:00:03,esp32,u4/303;u4/302,imported three"), `the export link's CSV: ${exported}`);
  });

  await step("a bulk order to the devices of a filter: previewed, confirmed, paced, each device's outcome", async () => {
    await page.goto(`${base}/#/devices?q=${encodeURIComponent("24:0A:C4:B0")}`);
    await page.locator('tr[data-uid="24:0A:C4:B0:00:01"]').waitFor({ timeout: DEADLINE_MS });
    await page.getByText("Act on the devices of this filter").click();
    const form = page.getByRole("form", { name: "Bulk action" });
    await form.getByLabel("Action").selectOption("order");
    await form.getByLabel("Order", { exact: true }).fill("frequency");
    await form.getByLabel("Value", { exact: true }).fill("900");
    await form.getByRole("button", { name: "Preview" }).click();
    await page.locator(".bulk-preview strong", { hasText: "2 devices" }).waitFor({ timeout: DEADLINE_MS });
    assert((await page.locator(".bulk-preview").innerText()).includes("24:0A:C4:B0:00:03"), "the preview names the devices");
    await page.getByRole("button", { name: "Send an order: confirm for 2 devices" }).click();
    await page.getByText(/2 done, 0 failed, 0 pending — finished\./).waitFor({ timeout: DEADLINE_MS });
    await shot("13-bulk-order");
    const ops = await admin("GET", "/bulk-operations");
    const op = await admin("GET", `/bulk-operations/${ops.items[0].id}`);
    assert(op.action === "order" && op.by === "admin" && op.outcomes.every((o) => o.outcome === "done"), `the operation recorded: ${JSON.stringify(op)}`);
    const orders = await admin("GET", "/devices/24:0A:C4:B0:00:03/orders");
    assert(orders.items[0].order === "frequency" && orders.items[0].outcome === "sent", "the device's order history has it");
  });

  await step("audit: the order, the adoption and the campaign are recorded with who did them", async () => {
    await page.getByRole("link", { name: "Audit" }).click();
    await page.getByRole("heading", { name: "Audit" }).waitFor({ timeout: DEADLINE_MS });
    const rows = page.locator("table.audit tbody tr");
    await waitFor("entries listed", async () => (await rows.count()) > 5);
    const campaign = page.locator('table.audit tbody tr[data-action="campaign.pause"]').first();
    await campaign.waitFor({ timeout: DEADLINE_MS });
    assert((await campaign.innerText()).includes("spring"), "the paused campaign is named");
    const filters = page.getByRole("form", { name: "Audit filters" });
    await filters.getByLabel("Action").fill("order.send");
    await filters.getByLabel("Who").fill("admin");
    await filters.getByRole("button", { name: "Filter" }).click();
    await waitFor("only orders by admin", async () => {
      const actions = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-action")));
      return actions.length > 0 && actions.every((a) => a === "order.send");
    });
    assert((await rows.allInnerTexts()).some((t) => t.includes("frequency 900")), "the order and its value");
    await filters.getByLabel("Action").fill("device.create");
    await filters.getByLabel("Who").fill("");
    await filters.getByLabel("Target").fill("24:0A:C4:E2:E0:99");
    await filters.getByRole("button", { name: "Filter" }).click();
    const adopted = page.locator('table.audit tbody tr[data-action="device.create"]');
    await waitFor("the adoption, by the signed-in admin", async () => (await adopted.count()) === 1 && (await adopted.innerText()).includes("admin"));
    assert((await adopted.innerText()).includes("enabled"), "the new device's fields");
    await shot("11-audit");
    const trail = await admin("GET", "/audit?action=session.sign_in");
    assert(trail.items.some((e) => e.actor.name === "admin"), "the dashboard sign-in is in the trail");
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor({ timeout: DEADLINE_MS });
  });

  await step("a viewer signs in and cannot send orders", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("User name").fill("vera");
    await page.getByLabel("Password").fill("viewer password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor({ timeout: DEADLINE_MS });
    await page.goto(`${base}/#/devices/${encodeURIComponent(device.uid)}`);
    await page.getByText("Viewers cannot send orders.").waitFor({ timeout: DEADLINE_MS });
    assert((await page.getByRole("button", { name: "Send order" }).count()) === 0, "no order form for a viewer");
    // Even a forged request with the session cookie and CSRF token is refused by central.
    const status = await page.evaluate(async () => {
      const s = await (await fetch("/api/v1/session")).json();
      const r = await fetch(`/api/v1/devices/${encodeURIComponent("24:0a:c4:e2:e0:01")}/orders`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": s.csrf_token },
        body: JSON.stringify({ order: "reboot" }),
      });
      return r.status;
    });
    assert(status === 403, `a viewer's order is refused with 403 (got ${status})`);
    assert((await page.getByRole("link", { name: "Audit" }).count()) === 0, "no Audit page for a viewer");
    consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((m) => !/status of 403/.test(m)));
  });

  await step("an operator of one site sees its devices only, and another site's device is not found", async () => {
    await admin("POST", "/sites", { slug: "carcassonne", name: "Carcassonne" });
    const iut = await admin("POST", "/buildings", { site: "carcassonne", name: "iut", description: "" });
    const room101 = await admin("POST", "/rooms", { building: iut.id, name: "101", description: "" });
    const theirs = await admin("POST", "/devices", { uid: "24:0a:c4:e2:e0:31", type: "esp32", rooms: [room101.id], description: "carcassonne board" });
    await admin("POST", "/users", { username: "carla", password: "carcassonne password", role: "operator", sites: ["carcassonne"] });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("User name").fill("carla");
    await page.getByLabel("Password").fill("carcassonne password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("(operator of carcassonne)").waitFor({ timeout: DEADLINE_MS });
    for (const link of ["Registry", "Audit", "Firmware"]) {
      assert((await page.getByRole("link", { name: link }).count()) === 0, `no ${link} page for a site operator`);
    }
    await page.getByRole("link", { name: "Devices" }).click();
    await page.getByText(theirs.uid).first().waitFor({ timeout: DEADLINE_MS });
    assert((await page.getByText(device.uid).count()) === 0, "the campus device is not listed");
    await shot("30-site-operator-devices");
    await page.goto(`${base}/#/devices/${encodeURIComponent(device.uid)}`);
    await page.getByText(/Cannot load .*not found/).waitFor({ timeout: DEADLINE_MS });
    const status = await page.evaluate(async (uid) => {
      const s = await (await fetch("/api/v1/session")).json();
      const r = await fetch(`/api/v1/devices/${encodeURIComponent(uid)}`, {
        method: "PATCH",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": s.csrf_token },
        body: JSON.stringify({ description: "taken over" }),
      });
      return r.status;
    }, device.uid);
    assert(status === 404, `another site's device cannot be changed (got ${status})`);
    consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((m) => !/status of 404/.test(m)));
  });

  await step("an admin widens the site operator to the whole campus from the Users page", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("User name").fill("admin");
    await page.getByLabel("Password").fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.goto(`${base}/#/registry/users`);
    await page.getByRole("button", { name: "Change the sites of carla" }).click();
    await page.getByLabel("Sites of carla (empty: whole campus)").fill("");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("row", { name: /carla/ }).getByText("whole campus").waitFor({ timeout: DEADLINE_MS });
    const carla = (await admin("GET", "/users")).items.find((u) => u.username === "carla");
    assert(carla.sites.length === 0, `carla is campus-wide now: ${JSON.stringify(carla)}`);
  });

  await step("no console errors", async () => {
    assert(consoleErrors.length === 0, `console errors:\n${consoleErrors.join("\n")}`);
  });
  log(`passed; screenshots in ${shots}`);
} catch {
  failed = true;
} finally {
  await client?.endAsync().catch(() => {});
  await browser?.close().catch(() => {});
  central.kill("SIGTERM");
  await waitFor("central to stop", async () => central.exitCode !== null || central.signalCode !== null, 15_000).catch(() => central.kill("SIGKILL"));
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

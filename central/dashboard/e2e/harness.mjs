// What the dashboard's end-to-end test needs beside the browser: a clock for its log, free
// loopback ports, polling with a deadline (never a fixed sleep), assertions.

import { createServer } from "node:net";

/** How long any awaited condition may take. */
export const DEADLINE_MS = 30_000;
const started = Date.now();

export function log(message) {
  console.log(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);
}

export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor(what, check, deadlineMs = DEADLINE_MS) {
  const until = Date.now() + deadlineMs;
  let last;
  while (Date.now() < until) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${deadlineMs / 1000} s waiting for ${what}${last ? ` (last error: ${last.message})` : ""}`);
}

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}


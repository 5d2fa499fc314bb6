/// <reference types="vitest/config" />
// Vite builds the dashboard into dist/, which neosens-central embeds (central/build.rs).
// `npm run dev` proxies the API to a local central on :8080 for working on the UI.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import { precompress } from "./precompress";
import { redocOffline } from "./redoc-offline";

export default defineConfig({
  // redocOffline: the API reference kept to central's CSP and to central (redoc-offline.ts);
  // precompress: .gz and .br copies of text assets, served by central as they are.
  plugins: [react(), redocOffline(), precompress("dist")],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No source maps in the binary: they would double its dashboard share.
    sourcemap: false,
    // The dashboard's own chunks stay far below this (~225 kB for React, ~50 kB for the app);
    // the one chunk above 600 kB is the API reference's (Redoc, ~1.2 MB), fetched only by
    // /api/docs.
    chunkSizeWarningLimit: 1300,
    rollupOptions: {
      // Two pages: the dashboard, and the API reference (Redoc, served at /api/docs) apart so
      // the dashboard's bundle does not carry it.
      input: { main: "index.html", "api-docs": "api-docs.html" },
    },
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8080" },
  },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["src/**/*.test.{ts,tsx}"],
  },
});

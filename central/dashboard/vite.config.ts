/// <reference types="vitest/config" />
// Vite builds the dashboard into dist/, which neosens-central embeds (central/build.rs).
// `npm run dev` proxies the API to a local central on :8080 for working on the UI.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No source maps in the binary: they would double its dashboard share.
    sourcemap: false,
    chunkSizeWarningLimit: 600,
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

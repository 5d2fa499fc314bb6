// A Vite plugin that writes a gzip and a brotli copy beside every compressible file of the build
// (`app.js` → `app.js.gz`, `app.js.br`). neosens-central embeds them with the originals
// (central/build.rs) and answers with the smallest one the browser accepts, so compression costs
// nothing at request time and the binary needs no compression library.
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import type { Plugin } from "vite";

/** Text formats gain from compression; images and fonts are compressed already. */
const COMPRESSIBLE = /\.(html|js|mjs|css|json|svg|txt|map)$/;
/** Below this size a compressed answer saves less than its headers cost. */
const MIN_BYTES = 512;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

/** Compresses `outDir` after the bundle is written; keeps a copy only when it is smaller. */
export function precompress(outDir: string): Plugin {
  return {
    name: "neosens-precompress",
    apply: "build",
    closeBundle() {
      for (const path of files(outDir)) {
        if (!COMPRESSIBLE.test(path)) continue;
        const bytes = readFileSync(path);
        if (bytes.length < MIN_BYTES) continue;
        const br = brotliCompressSync(bytes, {
          params: {
            [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
            [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
          },
        });
        const gz = gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION });
        if (br.length < bytes.length) writeFileSync(`${path}.br`, br);
        if (gz.length < bytes.length) writeFileSync(`${path}.gz`, gz);
      }
    },
  };
}

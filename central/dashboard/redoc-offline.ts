// A Vite plugin that makes Redoc's prebuilt library (redoc/bundles/redoc.browser.lib.js, the API
// reference at /api/docs) keep to central's Content Security Policy and to central itself:
//
// - Redoc injects perfect-scrollbar's CSS as an inline <style> with content (webpack's
//   style-loader), which `style-src 'self'` refuses: the injection is dropped, and the page imports
//   the same file into its own stylesheet instead (src/apiDocs/main.tsx).
// - Redoc's sidebar footer shows Redocly's logo from https://cdn.redoc.ly: the image becomes an
//   empty `data:` one, which fails to decode, so Redoc hides it (its onError) and fetches nothing.
//
// Each rewrite must match exactly once: when a Redoc upgrade changes the code, the build fails
// here rather than the page breaking the CSP at run time (the end-to-end test checks that too).
import type { Plugin } from "vite";

const REDOC_LIB = /\/node_modules\/redoc\/bundles\/redoc\.browser\.lib\.js$/;

const REWRITES: { what: string; find: RegExp; replace: string }[] = [
  {
    what: "style-loader's injection of perfect-scrollbar's CSS",
    // `…insertStyleElement=d(),o()(f.A,g)`: the call that adds the <style>.
    find: /(\.insertStyleElement=\w+\(\),)\w+\(\)\(\w+\.A,\w+\)/g,
    replace: "$1void 0",
  },
  {
    what: "Redocly's logo from its CDN",
    find: /"https:\/\/cdn\.redoc\.ly\/redoc\/logo-mini\.svg"/g,
    replace: '"data:,"',
  },
];

export function redocOffline(): Plugin {
  return {
    name: "neosens-redoc-offline",
    transform(code, id) {
      // The file itself, not the virtual modules (`\0…?commonjs-…`) that wrap it.
      if (!REDOC_LIB.test(id)) return null;
      let out = code;
      for (const { what, find, replace } of REWRITES) {
        const matches = out.match(find)?.length ?? 0;
        if (matches !== 1) {
          this.error(`redoc-offline: expected 1 match for ${what} in ${id}, found ${matches}: has Redoc changed? See redoc-offline.ts`);
        }
        out = out.replace(find, replace);
      }
      return { code: out, map: null };
    },
  };
}

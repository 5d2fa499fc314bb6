// The API reference at /api/docs: Redoc, bundled here (no CDN), rendering the document central
// serves at /api/v1/openapi.json. A separate Vite entry (api-docs.html), so the dashboard's own
// bundle does not carry Redoc. It runs under central's strict CSP: no inline script or style;
// styled-components (Redoc's styling) adds its rules through the CSSOM to an empty <style>
// element, which the page's CSP allows by the hash of the empty string (see API_DOCS_CSP in
// central/src/http/dashboard.rs). What else Redoc would do against the CSP: redoc-offline.ts.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { RedocStandalone } from "redoc";
// Redoc's scrollbar styles, as a file of this page's stylesheet (Redoc would inject them inline:
// see redoc-offline.ts).
import "perfect-scrollbar/css/perfect-scrollbar.css";
import "./apiDocs.css";

const SPEC_URL = "/api/v1/openapi.json";

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <RedocStandalone
      specUrl={SPEC_URL}
      options={{
        // Redoc's search runs in a Worker made from a blob: URL, which the CSP refuses.
        disableSearch: true,
        // The document is one click away already, at SPEC_URL.
        hideDownloadButton: false,
        expandResponses: "200,201",
        jsonSampleExpandLevel: 3,
        hideHostname: true,
        theme: {
          colors: { primary: { main: "#0b5cad" } },
          typography: {
            fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
            headings: { fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif' },
            code: { fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace' },
          },
        },
      }}
      onLoaded={(error) => {
        if (error) console.error(`the API reference could not load ${SPEC_URL}: ${error.message}`);
      }}
    />
  </StrictMode>,
);

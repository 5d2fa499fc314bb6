// The shell: sign-in gate, navigation, the page of the current route, and alert toasts.
import { useCallback, useEffect, useState } from "react";
import { api, setCsrfToken, whenSignedOut, type Role, type Session } from "./api";
import { SessionContext, campusWide, can } from "./session";
import { useRoute, hrefOf } from "./lib/router";
import { Login } from "./components/Login";
import { Toasts } from "./components/Toasts";
import { Overview } from "./pages/Overview";
import { Devices } from "./pages/Devices";
import { DevicePage } from "./pages/DevicePage";
import { Alerts } from "./pages/Alerts";
import { Registry } from "./pages/Registry";
import { Firmware } from "./pages/Firmware";
import { Audit } from "./pages/Audit";

// `campus`: pages about the whole campus, which a user limited to some sites does not get
// (central refuses their routes to it too).
const NAV: { path: string; label: string; role?: Role; campus?: boolean }[] = [
  { path: "", label: "Overview" },
  { path: "devices", label: "Devices" },
  { path: "alerts", label: "Alerts" },
  { path: "firmware", label: "Firmware", campus: true },
  { path: "registry", label: "Registry", campus: true },
  { path: "audit", label: "Audit", role: "operator", campus: true },
];

export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [checked, setChecked] = useState(false);
  const route = useRoute();

  const signedIn = useCallback((s: Session | null) => {
    setCsrfToken(s?.csrf_token ?? "");
    setSession(s);
  }, []);

  useEffect(() => {
    whenSignedOut(() => signedIn(null));
    api<Session>("GET", "/session")
      .then(signedIn)
      .catch(() => signedIn(null))
      .finally(() => setChecked(true));
  }, [signedIn]);

  if (!checked) return <p className="loading">Loading…</p>;
  if (!session) return <Login onSignedIn={signedIn} />;

  const section = route.path[0] ?? "";
  const allowed = NAV.filter((n) => (!n.role || can(session, n.role)) && (!n.campus || campusWide(session)));
  let page;
  if (section && NAV.some((n) => n.path === section) && !allowed.some((n) => n.path === section))
    page = <p className="error">This page is about the whole campus; your rights cover {session.sites.join(", ")} only.</p>;
  else if (section === "devices" && route.path[1]) page = <DevicePage id={route.path[1]} />;
  else if (section === "devices") page = <Devices params={route.params} />;
  else if (section === "alerts") page = <Alerts />;
  else if (section === "firmware") page = <Firmware />;
  else if (section === "audit") page = <Audit />;
  else if (section === "registry") page = <Registry tab={route.path[1] ?? "sites"} />;
  else page = <Overview />;

  const signOut = async () => {
    try {
      await api("DELETE", "/session");
    } finally {
      signedIn(null);
    }
  };

  return (
    <SessionContext.Provider value={session}>
      <a className="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header className="top">
        <span className="brand">neosens</span>
        <nav aria-label="Sections">
          {allowed.map((n) => (
            <a key={n.path} href={hrefOf(n.path ? [n.path] : [])} aria-current={section === n.path ? "page" : undefined}>
              {n.label}
            </a>
          ))}
        </nav>
        <span className="who">
          {session.username}{" "}
          <span className="role">
            ({session.role}
            {campusWide(session) ? "" : ` of ${session.sites.join(", ")}`}
            {can(session, "operator") ? "" : ", read-only"})
          </span>
          <button type="button" className="link" onClick={signOut}>
            Sign out
          </button>
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
      <Toasts />
    </SessionContext.Provider>
  );
}

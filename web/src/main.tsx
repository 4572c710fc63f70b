import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { Designer } from "./Designer";
import { Monitor } from "./Monitor";
import "./style.css";

function App() {
  const [page, setPage] = useState(window.location.hash === "#monitor" ? "monitor" : "designer");
  useEffect(() => {
    const onHash = () => setPage(window.location.hash === "#monitor" ? "monitor" : "designer");
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  return (
    <div className="app">
      <header className="topbar">
        <span className="brand">deeptoolbox</span>
        <a href="#designer" className={page === "designer" ? "tab active" : "tab"} data-testid="tab-designer">
          Network Designer
        </a>
        <a href="#monitor" className={page === "monitor" ? "tab active" : "tab"} data-testid="tab-monitor">
          Training Monitor
        </a>
      </header>
      <main className="page">{page === "designer" ? <Designer /> : <Monitor />}</main>
    </div>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);

import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { Designer } from "./Designer";
import { Monitor } from "./Monitor";
import { Experiments } from "./Experiments";
import { Labeler } from "./Labeler";
import "./style.css";

function App() {
  const pageOf = () => (["#monitor", "#experiments", "#labeler"].includes(window.location.hash) ? window.location.hash.slice(1) : "designer");
  const [page, setPage] = useState(pageOf());
  useEffect(() => {
    const onHash = () => setPage(pageOf());
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
        <a href="#experiments" className={page === "experiments" ? "tab active" : "tab"} data-testid="tab-experiments">
          Experiment Manager
        </a>
        <a href="#labeler" className={page === "labeler" ? "tab active" : "tab"} data-testid="tab-labeler">
          Labeler
        </a>
      </header>
      <main className="page">{page === "designer" ? <Designer /> : page === "monitor" ? <Monitor /> : page === "labeler" ? <Labeler /> : <Experiments />}</main>
    </div>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);

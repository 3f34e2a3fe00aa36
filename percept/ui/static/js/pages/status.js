// Status: every deployment from /platform/health, and where the Ray dashboard is.
import { call } from "../api.js";
import { el, guarded, messageBox, section } from "../ui.js";

export async function render(root) {
  const box = messageBox();
  const summary = el("p", { "aria-live": "polite", id: "health-summary" });
  const body = el("tbody");
  const links = el("p");
  const refresh = el("button", { type: "button", class: "secondary" }, "Refresh");
  root.append(el("h1", {}, "Status"), links, box,
    section("Deployments", el("div", { class: "row" }, summary, refresh),
      el("div", { style: { overflowX: "auto" } }, el("table", { id: "deployments" },
        el("thead", {}, el("tr", {}, el("th", {}, "Deployment"), el("th", {}, "State"), el("th", {}, "Model"),
          el("th", {}, "Device"), el("th", {}, "Details"))), body))));

  const load = guarded(box, async () => {
    const [health, config] = await Promise.all([call("/platform/health", { auth: "none" }), call("/ui/api/config", { auth: "none" })]);
    links.replaceChildren("Watch replicas, logs and autoscaling in the ",
      el("a", { href: config.dashboard_url, target: "_blank", rel: "noopener", id: "dashboard-link" }, "Ray dashboard"),
      ` (${config.dashboard_url}; it asks for the Ray token on clusters with token authentication — see the README). `,
      "Services served: ", config.services.join(", "), ".");
    const entries = Object.entries(health.deployments);
    summary.textContent = health.status === "ok" ? `All ${entries.length} deployments are available.`
      : `${health.unavailable.length} of ${entries.length} deployments are not available: ${health.unavailable.join(", ")}.`;
    body.replaceChildren(...entries.map(([name, s]) => el("tr", {},
      el("th", { scope: "row" }, name),
      el("td", {}, el("span", { class: `badge ${s.available ? (s.fallback ? "warn" : "ok") : "bad"}` },
        s.available ? (s.fallback ? "fallback" : "available") : "unavailable")),
      el("td", {}, s.model || s.name || ""),
      el("td", {}, s.device || ""),
      el("td", {}, [s.fallback, s.message && s.message !== "ready" ? s.message : ""].filter(Boolean).join(" ")))));
  });
  refresh.addEventListener("click", load);
  await load();
}

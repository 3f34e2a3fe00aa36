// Correction: a dataset folder on the server -> a job with a live progress bar (the job's
// websocket) -> the report: projection scatter, flagged images with suggested labels, and
// before / after of the blur and lighting fixes.
import { call, poll, session, wsUrl } from "../api.js";
import { el, field, guarded, messageBox, progressBar, busy, section, blobUrl } from "../ui.js";

const TASKS = [
  ["diagnose_mislabeled_images", "Find wrong labels", true],
  ["correct_image_blur", "Fix blurred images", true],
  ["correct_lighting_conditions", "Fix too dark / too bright images", true],
  ["diagnose_class_splitting", "Find classes that are really several", false],
];
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728"];

export async function render(root) {
  const box = messageBox();
  const progress = progressBar("Job progress");
  const results = el("div", { id: "correction-results" });
  const folder = el("input", { type: "text", name: "folder", list: "folders", placeholder: "/path/to/dataset" });
  const folders = el("datalist", { id: "folders" });
  const rootsHint = el("span", {}, "A folder with one sub-folder per class, on the server.");
  const tasks = el("fieldset", {}, el("legend", {}, "What to do"),
    TASKS.map(([name, text, on]) => el("div", {}, el("label", {},
      el("input", { type: "checkbox", name: "task", value: name, checked: on }), ` ${text}`))));
  const start = el("button", { type: "submit" }, "Start the job");
  const upload = el("input", { type: "file", webkitdirectory: true, multiple: true, name: "dataset_upload" });
  const uploadState = el("span", { class: "hint", "aria-live": "polite" });
  upload.addEventListener("change", guarded(box, async () => {
    const files = [...upload.files];
    if (!files.length) return;
    const form = new FormData();
    const top = (files[0].webkitRelativePath || "dataset").split("/")[0];
    form.append("name", top);
    files.forEach((f) => form.append("files", f, f.webkitRelativePath || f.name));
    uploadState.textContent = `Uploading ${files.length} files…`;
    let saved;
    try {
      saved = await call("/ui/api/correction/datasets", { method: "POST", form });
    } catch (err) {
      uploadState.textContent = "";  // the error box says why; no stale "Uploading…"
      throw err;
    }
    folder.value = saved.path;
    uploadState.textContent = `${saved.images} images uploaded to ${saved.path}.`;
  }));
  const form = el("form", { class: "card", "aria-label": "New correction job" },
    field("Dataset folder", folder), folders, el("p", { class: "hint" }, rootsHint),
    field("Or upload a dataset folder from this computer", upload, "One sub-folder per class; the images are copied to the server."),
    uploadState, tasks,
    el("div", { class: "row" }, start), progress, box);
  root.append(el("h1", {}, "Correction"),
    el("p", { class: "lead" }, "Find wrong labels, blurred and badly lit images in a labelled dataset."), form, results);
  let socket = null;

  call("/ui/api/correction/roots").then((r) => {
    folders.replaceChildren(...r.folders.map((f) => el("option", { value: f })));
    rootsHint.textContent = `A folder with one sub-folder per class, inside ${r.allowed_roots.join(" or ")}.`;
    if (!folder.value && r.folders.length) folder.placeholder = r.folders[0];
  }).catch((err) => box.show(err.message, "error"));

  form.addEventListener("submit", guarded(box, async () => {
    const chosen = [...tasks.querySelectorAll("input:checked")].map((i) => ({ name: i.value }));
    if (!folder.value.trim()) throw new Error("Enter the dataset folder.");
    if (!chosen.length) throw new Error("Choose at least one thing to do.");
    busy(start, true, "Running…");
    results.replaceChildren();
    try {
      const dataset = await call("/ui/api/correction/folder", { method: "POST", json: { path: folder.value.trim() } });
      progress.set(0, `${dataset.images} images in ${dataset.classes.length} classes`);
      const job = await call("/correction/jobs", { method: "POST", json: {
        dataset: { uuid: dataset.uuid, classes: dataset.classes, class_files: dataset.class_files },
        tasks: chosen, config_params: {} } });
      const final = await follow(job.job_id, progress, (s) => { socket = s; });
      if (final.status !== "completed") throw new Error(`The job failed: ${final.error || "no reason given"}.`);
      progress.set(100, "completed");
      const result = await call(`/correction/jobs/${job.job_id}/result`);
      await showReport(results, job.job_id, result);
      box.show("The job is done.", "ok");
    } finally { busy(start, false); }
  }));
  return () => { if (socket) socket.close(); };
}

// The job's websocket events until the final status; polling if the socket cannot open.
function follow(jobId, progress, keep) {
  return new Promise((resolve, reject) => {
    let last = null;
    const ws = new WebSocket(wsUrl(`/correction/jobs/${jobId}/events?token=${encodeURIComponent(session.user.token)}`));
    keep(ws);
    ws.onmessage = (e) => {
      const event = JSON.parse(e.data);
      if (event.event === "error") { reject(new Error(event.error)); return; }
      last = event;
      progress.set(event.progress, event.message || event.status);
      if (event.status === "completed" || event.status === "failed") { ws.close(); resolve(event); }
    };
    ws.onerror = () => {
      if (last) return;
      // no websocket (a proxy that drops upgrades): poll the job instead
      poll(() => call(`/correction/jobs/${jobId}`), (s) => s.status === "completed" || s.status === "failed",
        { onState: (s) => progress.set(s.progress, s.message || s.status) }).then(resolve, reject);
    };
  });
}

function images(result) {
  const out = [];
  for (const [cls, files] of Object.entries(result.dataset.class_files)) {
    for (const [path, meta] of Object.entries(files)) out.push({ ...meta, path, cls });
  }
  return out;
}

async function thumb(url, alt) {
  try {
    return el("img", { src: blobUrl(await call(url, { blob: true })), alt });
  } catch {
    return el("span", { class: "hint" }, "(image not readable)");
  }
}

async function showReport(root, jobId, result) {
  const all = images(result);
  const byUuid = Object.fromEntries(all.map((i) => [i.uuid, i]));
  const flagged = new Set();
  const suggested = {};
  const lines = [];
  for (const task of result.tasks) {
    (task.outliers || []).forEach((u) => flagged.add(u));
    Object.assign(suggested, task.suggested || {});
    const parts = [];
    if (task.outliers) parts.push(`${task.outliers.length} flagged`);
    if (task.corrected) parts.push(`${task.corrected.length} corrected`);
    if (task.removed) parts.push(`${task.removed.length} removed`);
    if (task.error) parts.push(`error: ${task.error}`);
    lines.push(el("li", {}, el("b", {}, task.name), `: ${parts.join(", ") || "nothing found"}`));
  }
  const parts = [section("Findings", el("ul", { id: "findings" }, lines),
    el("button", { type: "button", class: "secondary", onclick: async () => {
      const html = await call(`/correction/jobs/${jobId}/report`, { blob: true });
      window.open(blobUrl(new Blob([html], { type: "text/html" })), "_blank", "noopener");
    } }, "Open the full HTML report"))];
  parts.push(section("Projection", scatter(result, all, flagged)));

  const mislabeled = Object.entries(suggested);
  if (mislabeled.length) {
    const grid = el("div", { class: "results", id: "flagged" });
    for (const [uuid, cls] of mislabeled.slice(0, 48)) {
      const item = byUuid[uuid];
      grid.append(el("figure", {}, await thumb(`/ui/api/correction/jobs/${jobId}/original/${encodeURIComponent(uuid)}`, `image ${uuid}`),
        el("figcaption", {}, `${uuid}: labelled ${item ? item.original_class || item.cls : "?"}, suggested `, el("b", {}, cls))));
    }
    parts.push(section("Images that may be labelled wrong", grid));
  }

  const fixed = all.filter((i) => i.corrected_path);
  if (fixed.length) {
    const list = el("div", { id: "fixes" });
    for (const item of fixed.slice(0, 24)) {
      const how = (item.corrections || []).map((c) => (typeof c === "string" ? c : c.task || c.kind || JSON.stringify(c))).join(", ");
      list.append(el("div", { class: "pair" },
        el("figure", {}, await thumb(`/ui/api/correction/jobs/${jobId}/original/${encodeURIComponent(item.uuid)}`, `${item.uuid} before`), el("figcaption", {}, `${item.uuid} before`)),
        el("figure", {}, await thumb(`/correction/jobs/${jobId}/files/${item.corrected_path}`, `${item.uuid} after`), el("figcaption", {}, `after${how ? ` (${how})` : ""}`))));
    }
    parts.push(section("Before and after the fixes", list));
  }
  const removed = all.filter((i) => i.removed);
  if (removed.length) parts.push(section("Removed", el("p", {}, removed.map((i) => `${i.uuid} (${i.removed_by || "removed"})`).join(", "))));
  root.replaceChildren(...parts);
}

function scatter(result, all, flagged) {
  const NS = "http://www.w3.org/2000/svg";
  const pts = all.filter((i) => i.projections && Array.isArray(i.projections.pca));
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 400 300");
  svg.setAttribute("class", "scatter");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Projection of ${pts.length} images, coloured by class; ${flagged.size} flagged images ringed in red`);
  if (!pts.length) return el("p", {}, "No projections in this result.");
  const xs = pts.map((p) => p.projections.pca[0]);
  const ys = pts.map((p) => p.projections.pca[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => 15 + (370 * (x - x0)) / (x1 - x0 || 1);
  const sy = (y) => 285 - (270 * (y - y0)) / (y1 - y0 || 1);
  const classes = result.dataset.classes;
  for (const p of pts) {
    const c = document.createElementNS(NS, "circle");
    const cls = p.original_class || p.cls;
    c.setAttribute("cx", sx(p.projections.pca[0]));
    c.setAttribute("cy", sy(p.projections.pca[1]));
    c.setAttribute("r", flagged.has(p.uuid) ? 5 : 3.5);
    c.setAttribute("fill", PALETTE[Math.max(0, classes.indexOf(cls)) % PALETTE.length]);
    if (flagged.has(p.uuid)) { c.setAttribute("stroke", "#d00"); c.setAttribute("stroke-width", "2"); }
    const t = document.createElementNS(NS, "title");
    t.textContent = `${p.uuid} (${cls})${flagged.has(p.uuid) ? " flagged" : ""}`;
    c.append(t);
    svg.append(c);
  }
  const legend = el("ul", { class: "legend" }, classes.map((c, i) =>
    el("li", {}, el("span", { class: "swatch", style: { background: PALETTE[i % PALETTE.length] } }), c)),
  el("li", {}, el("span", { class: "swatch", style: { border: "2px solid #d00" } }), "flagged"));
  return el("div", {}, svg, legend);
}

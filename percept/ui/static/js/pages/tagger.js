// Tagger: drop an image or a video; its labels with scores, and for a video the timeline of
// where each label appears. The tagger's contract has no auth (an internal service).
import { call } from "../api.js";
import { el, field, guarded, messageBox, busy, section, fileToBase64, pct, blobUrl } from "../ui.js";

export async function render(root) {
  const box = messageBox();
  const file = el("input", { type: "file", accept: "image/*,video/*", name: "media" });
  const count = el("input", { type: "number", min: "1", max: "25", value: "5", name: "num_labels" });
  const go = el("button", { type: "submit" }, "Tag it");
  const drop = el("div", { class: "card dropzone", tabindex: "0", role: "button",
    "aria-label": "Drop an image or a video here, or press Enter to choose one" },
  el("p", {}, "Drop an image or a video here, or ", el("b", {}, "choose a file"), "."));
  const output = el("div", { id: "tagger-results" });
  const form = el("form", { class: "card", "aria-label": "Tag an image or a video" },
    field("Image or video", file), field("How many labels", count), el("div", { class: "row" }, go), box);
  root.append(el("h1", {}, "Tagger"), el("p", { class: "lead" }, "What is in this picture or video?"), drop, form, output);

  drop.addEventListener("click", () => file.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); file.click(); } });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) {
      file.files = e.dataTransfer.files;
      form.requestSubmit();
    }
  });
  file.addEventListener("change", () => { if (file.files[0]) form.requestSubmit(); });

  form.addEventListener("submit", guarded(box, async () => {
    const f = file.files[0];
    if (!f) throw new Error("Choose an image or a video.");
    busy(go, true, "Tagging…");
    output.replaceChildren();
    try {
      const ext = (f.name.split(".").pop() || "").toLowerCase();
      const answer = await call("/process", { method: "POST", auth: "none", json: {
        documents: [{ id: "console", source: { content: await fileToBase64(f), file_type: ext || f.type, file_name: f.name } }],
        num_labels: Number(count.value) || 5 } });
      if (!answer.data.length) {
        const why = (answer.list_id_not_treated[0] || {}).console || "not taggable";
        throw new Error(`Percept could not tag this file: ${why}.`);
      }
      show(output, answer.data[0].source, f);
    } finally { busy(go, false); }
  }));
}

function show(root, source, file) {
  const labels = source.content || [];
  const isVideo = source.media_type === "video";
  const preview = isVideo ? el("video", { src: blobUrl(file), controls: true, muted: true, style: { maxWidth: "100%", maxHeight: "320px" }, "aria-label": "The video" })
    : el("img", { src: blobUrl(file), alt: "The tagged image", style: { maxWidth: "100%", maxHeight: "320px" } });
  const rows = labels.map((l) => el("tr", {},
    el("td", {}, l.label),
    el("td", {}, el("meter", { min: "0", max: "1", value: String(l.probability), "aria-label": `${l.label} score` }), ` ${pct(l.probability, 1)}`),
    isVideo ? el("td", {}, timeline(l.timestamps || [], source.duration, l.label)) : null));
  const head = el("tr", {}, el("th", {}, "Label"), el("th", {}, "Score"), isVideo ? el("th", {}, "Where in the video") : null);
  const facts = isVideo ? el("p", { class: "hint" },
    `${Number(source.duration || 0).toFixed(1)} s video; frames looked at: ${(source.frames_analysed || []).map((t) => `${Number(t).toFixed(1)} s`).join(", ")}.`) : null;
  root.replaceChildren(section(isVideo ? "Labels over the video" : "Labels", preview, facts,
    el("table", { id: "labels" }, el("thead", {}, head), el("tbody", {}, rows))));
}

function timeline(stamps, duration, label) {
  const d = Number(duration) || Math.max(1, ...stamps);
  const line = el("div", { class: "timeline", role: "img",
    "aria-label": stamps.length ? `${label} appears at ${stamps.map((t) => `${Number(t).toFixed(1)} s`).join(", ")}` : `${label}: no single frame` });
  for (const t of stamps) line.append(el("span", { class: "tick", title: `${Number(t).toFixed(1)} s`, style: { left: `${(100 * t) / d}%` } }));
  return line;
}

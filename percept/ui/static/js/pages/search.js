// Search: collect images from a web page, then search them by an image, a colour or a text.
import { call, poll } from "../api.js";
import { el, field, guarded, messageBox, progressBar, busy, section, blobUrl } from "../ui.js";

async function task(path, progress) {
  const started = await call(path);
  const done = await poll(() => call(`/platform/tasks/${started.task_id}`),
    (t) => t.status === "finished" || t.status === "failed",
    { onState: (t) => progress.set(t.progress, t.message || t.status) });
  if (done.status === "failed") throw new Error(`It failed: ${done.error || "no reason given"}.`);
  return done.result;
}

function colourPng(hex) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 64;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = hex;
  ctx.fillRect(0, 0, 64, 64);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

export async function render(root) {
  const box = messageBox();
  const progress = progressBar("Collection progress");
  const collected = el("p", { "aria-live": "polite", id: "collected" });
  const url = el("input", { type: "url", name: "url", placeholder: "https://shop.example.com/", required: true });
  const scrapeBtn = el("button", { type: "submit" }, "Collect images");
  const clearBtn = el("button", { type: "button", class: "secondary" }, "Delete my images");
  const scrapeForm = el("form", { "aria-label": "Collect images from a page" },
    field("Web page", url, "Images on this page (and pages it links to on the same site) are stored for you."),
    el("div", { class: "row" }, scrapeBtn, clearBtn), progress, collected);

  const image = el("input", { type: "file", accept: "image/png,image/jpeg,image/webp", name: "query_image" });
  const imageBtn = el("button", { type: "button" }, "Find similar images");
  const colour = el("input", { type: "color", value: "#c0392b", class: "swatch-input", name: "colour" });
  const colourMode = el("select", { name: "colour_mode" },
    el("option", { value: "find_all_similar_by_lab" }, "the same colour"),
    el("option", { value: "find_all_complementary" }, "complementary colours"));
  const colourBtn = el("button", { type: "button" }, "Find by colour");
  const text = el("input", { type: "text", name: "text_query", placeholder: "a red summer dress" });
  const textBtn = el("button", { type: "button" }, "Find by text");
  const resultsHead = el("p", { "aria-live": "polite", id: "results-head" });
  const grid = el("div", { class: "results", id: "results" });

  root.append(el("h1", {}, "Search"),
    el("p", { class: "lead" }, "Collect product images, then find similar ones."),
    section("1. Collect images", scrapeForm), box,
    section("2. Search",
      el("div", { class: "grid2" },
        el("div", {}, field("By an image", image), el("div", { class: "row" }, imageBtn)),
        el("div", {}, el("div", { class: "row" }, field("By a colour", colour), field("Find", colourMode)),
          el("div", { class: "row" }, colourBtn))),
      field("By a text", text, "Needs the CLIP model's weights on the server."), el("div", { class: "row" }, textBtn)),
    section("Results", resultsHead, grid));

  scrapeForm.addEventListener("submit", guarded(box, async () => {
    if (!url.value.trim()) throw new Error("Enter the address of a web page.");
    busy(scrapeBtn, true, "Collecting…");
    try {
      const scraped = await task(`/scrape?url=${encodeURIComponent(url.value.trim())}`, progress);
      const count = (x) => (Array.isArray(x) ? x.length : Number(x) || 0);
      collected.textContent = `${scraped.stored ?? 0} new images stored (${count(scraped.duplicates)} already there, `
        + `${count(scraped.skipped)} skipped). Preparing them for similarity search…`;
      const embedded = await task("/get_all_resnet_embeddings", progress);
      let text = "Search by text is not available here (no CLIP weights on the server).";
      try {
        const clip = await task("/get_all_clip_embeddings", progress);
        text = `${clip.embedded ?? 0} prepared for search by text with ${clip.model}.`;
      } catch (err) {
        console.debug(err);  // no CLIP: image and colour search still work
      }
      collected.textContent = `${scraped.stored ?? 0} new images stored; ${embedded.embedded ?? 0} prepared for similarity search with ${embedded.model}.`
        + (embedded.note ? ` ${embedded.note}` : "") + ` ${text}`;
    } finally { busy(scrapeBtn, false); }
  }));
  clearBtn.addEventListener("click", guarded(box, async () => {
    if (!window.confirm("Delete all the images you collected?")) return;
    const r = await call("/clear_all");
    collected.textContent = `${r.deleted} images deleted.`;
    grid.replaceChildren();
  }));

  async function show(answer, what, distance = false) {
    const q = answer.query || {};
    const model = q.model ? ` with ${q.model}` : "";
    resultsHead.textContent = `${answer.results.length} images ${what}${model}${distance ? " (CIEDE2000 distance: lower is closer)" : ""}.${q.note ? ` ${q.note}` : ""}`;
    grid.replaceChildren();
    if (!answer.results.length) {
      resultsHead.textContent += " Collect some images first (step 1).";
      return;
    }
    for (const hit of answer.results) {
      const img = el("img", { alt: `result ${hit.id}`, loading: "lazy" });
      call(`/ui/api/search/images/${hit.id}`, { blob: true }).then((b) => { img.src = blobUrl(b); }).catch(() => {});
      const value = Number(hit.score).toFixed(distance ? 1 : 3);
      grid.append(el("figure", {}, img, el("figcaption", {}, distance ? `distance ${value}` : `score ${value}`)));
    }
  }
  async function search(path, form, what, distance = false) {
    const answer = await call(`${path}?format=json`, { method: "POST", form });
    await show(answer, what, distance);
  }

  imageBtn.addEventListener("click", guarded(box, async () => {
    if (!image.files[0]) throw new Error("Choose an image to search with.");
    busy(imageBtn, true, "Searching…");
    try {
      const form = new FormData();
      form.append("image", image.files[0]);
      await search("/get_top_24_resnet_similar", form, "look most like yours");
    } finally { busy(imageBtn, false); }
  }));
  colourBtn.addEventListener("click", guarded(box, async () => {
    busy(colourBtn, true, "Searching…");
    try {
      const form = new FormData();
      form.append("image", await colourPng(colour.value), "colour.png");
      const what = colourMode.value === "find_all_complementary" ? `complement ${colour.value}` : `are closest to ${colour.value}`;
      await search(`/${colourMode.value}`, form, what, colourMode.value === "find_all_similar_by_lab");
    } catch (err) {
      if (err.status === 422 && colourMode.value === "find_all_complementary") {
        throw new Error("A grey has no complementary colour: choose a more colourful one.");
      }
      throw err;
    } finally { busy(colourBtn, false); }
  }));
  textBtn.addEventListener("click", guarded(box, async () => {
    if (!text.value.trim()) throw new Error("Type what you are looking for.");
    busy(textBtn, true, "Searching…");
    try {
      const answer = await call("/get_top_25_clip_similar?format=json", { method: "POST", json: { text_query: text.value.trim() } });
      await show(answer, `match “${text.value.trim()}”`);
    } catch (err) {
      if (err.status === 503) {
        throw new Error(`Search by text is not available on this server: the CLIP model's weights are missing (the server said: ${err.detail || "unavailable"}). Search by an image or a colour works.`);
      }
      throw err;
    } finally { busy(textBtn, false); }
  }));
}

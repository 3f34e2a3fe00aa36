// Inspection: connect with an API client (the inspection API's own client-credentials auth),
// upload good / defect images, train, watch the model go creating -> active, predict, and
// look at each image with its heatmap and boxes.
import { call, poll, session } from "../api.js";
import { el, field, guarded, messageBox, busy, section, blobUrl } from "../ui.js";

const C = { auth: "client" };

function upload(files, fields) {
  const form = new FormData();
  [...files].forEach((f, i) => form.append(`files[${i}]`, f, f.name));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return call("/api/v1/upload", { method: "POST", form, ...C });
}

async function imageUrl(url) {
  return blobUrl(await call(new URL(url, location.href).pathname, { blob: true, ...C }));
}

export async function render(root) {
  root.append(el("h1", {}, "Inspection"),
    el("p", { class: "lead" }, "Train a defect detector on photos of good products, then check new ones."));
  const host = el("div");
  root.append(host);
  if (session.client) workbench(host);
  else connect(host);
}

function connect(host) {
  const box = messageBox();
  const clientId = el("input", { type: "text", name: "client_id", autocomplete: "username", required: true });
  const secret = el("input", { type: "password", name: "client_secret", autocomplete: "current-password", required: true });
  const license = el("input", { type: "file", name: "license", accept: ".key,.lic,.txt,text/plain" });
  const go = el("button", { type: "submit" }, "Connect");
  const form = el("form", { class: "card", "aria-labelledby": "connect-h" },
    el("h2", { id: "connect-h" }, "Connect with your API client"),
    el("p", { class: "hint" }, "Inspection uses API clients, one per factory line. An operator creates one with ",
      el("code", {}, "percept clients create \"Line 1\""), " and a license with ",
      el("code", {}, "percept license issue <client id> -o line1.key"), "."),
    field("Client id", clientId), field("Client secret", secret),
    field("License file", license, "Needed once per client; leave empty if it is already activated."),
    el("div", { class: "row" }, go), box);
  form.addEventListener("submit", guarded(box, async () => {
    if (!clientId.value.trim() || !secret.value) throw new Error("Enter the client id and its secret.");
    busy(go, true, "Connecting…");
    try {
      const answer = await call("/api/auth/token", { method: "POST", auth: "none", json: {
        client_id: clientId.value.trim(), client_secret: secret.value, grant_type: "client_credentials" } });
      session.client = { client_id: clientId.value.trim(), token: answer.data.access_token };
      if (license.files[0]) {
        const lf = new FormData();
        lf.append("license", license.files[0]);
        try {
          await call("/api/v1/license", { method: "POST", form: lf, ...C });
        } catch (err) {
          if (!String(err.detail).includes("License already exists")) { session.client = null; throw err; }
        }
      }
      host.replaceChildren();
      workbench(host);
    } finally { busy(go, false); }
  }));
  host.append(form);
}

function workbench(host) {
  const box = messageBox();
  const who = el("p", {}, `Connected as client ${session.client.client_id}. `,
    el("button", { type: "button", class: "link", onclick: () => { session.client = null; host.replaceChildren(); connect(host); } }, "Disconnect"));

  // 1. training images
  const goods = el("input", { type: "file", accept: "image/*", multiple: true, name: "good" });
  const defects = el("input", { type: "file", accept: "image/*", multiple: true, name: "defect" });
  const uploadBtn = el("button", { type: "button" }, "Upload training images");
  const uploaded = el("p", { class: "hint", "aria-live": "polite" });
  let trainingIds = [];

  // 2. train
  const algorithm = el("select", { name: "algorithm" });
  const modelName = el("input", { type: "text", name: "model_name", value: "line-1" });
  const trainBtn = el("button", { type: "button" }, "Train");
  const modelsTable = el("tbody");
  const modelStatus = el("p", { "aria-live": "polite", id: "model-status" });

  // 3. predict
  const checks = el("input", { type: "file", accept: "image/*", multiple: true, name: "check" });
  const predictBtn = el("button", { type: "button" }, "Check these images");
  const verdicts = el("div", { id: "verdicts" });

  host.append(who, box,
    section("1. Training images",
      el("div", { class: "grid2" },
        field("Good products", goods, "Photos of products without defects (at least a few)."),
        field("Products with defects (optional)", defects, "Labelled defects help judge the model.")),
      el("div", { class: "row" }, uploadBtn), uploaded),
    section("2. Train a model",
      el("div", { class: "grid2" }, field("Algorithm", algorithm), field("Model name", modelName)),
      el("div", { class: "row" }, trainBtn), modelStatus,
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Model"), el("th", {}, "Algorithm"), el("th", {}, "Status"), el("th", {}, "Active"))), modelsTable)),
    section("3. Check new products",
      field("Images to check", checks), el("div", { class: "row" }, predictBtn), verdicts));

  async function refreshModels() {
    const models = (await call("/api/v1/models", C)).data;
    modelsTable.replaceChildren(...models.map((m) => el("tr", {},
      el("td", {}, `${m.name} (#${m.model_id})`), el("td", {}, m.algorithm_id),
      el("td", {}, el("span", { class: `badge ${m.status === "active" ? "ok" : m.status === "failed" ? "bad" : "warn"}` }, m.status),
        m.error ? ` ${m.error}` : ""),
      el("td", {}, m.active ? "yes" : ""))));
    return models;
  }

  (async () => {
    try {
      const algos = (await call("/api/v1/algorithms", C)).data;
      algorithm.replaceChildren(...algos.map((a) => el("option", { value: a.algorithm_id }, `${a.name} (${a.algorithm_id})`)));
      // the first listed algorithm is the service's default (patchcore)
      await refreshModels();
    } catch (err) {
      box.show(err.status === 403 ? `${err.message} Activate the client's license: disconnect and connect again with the license file.` : err.message, "error");
    }
  })();

  uploadBtn.addEventListener("click", guarded(box, async () => {
    if (!goods.files.length) throw new Error("Choose some photos of good products first.");
    busy(uploadBtn, true, "Uploading…");
    try {
      const g = (await upload(goods.files, { training: "true", good: "true" })).data.item_ids;
      const d = defects.files.length ? (await upload(defects.files, { training: "true", good: "false" })).data.item_ids : [];
      trainingIds = [...g, ...d];
      uploaded.textContent = `${g.length} good and ${d.length} defect images uploaded.`;
    } finally { busy(uploadBtn, false); }
  }));

  trainBtn.addEventListener("click", guarded(box, async () => {
    if (!trainingIds.length) throw new Error("Upload the training images first (step 1).");
    busy(trainBtn, true, "Training…");
    try {
      const model = (await call("/api/v1/train", { method: "POST", ...C, json: {
        algorithm_id: algorithm.value, name: modelName.value.trim() || "model", override_params: null, item_ids: trainingIds } })).data;
      const seen = [model.status];
      modelStatus.textContent = `Model ${model.name}: ${seen.join(" → ")}`;
      const final = await poll(async () => (await refreshModels()).find((m) => m.model_id === model.model_id),
        (m) => !m || m.status !== "creating",
        { onState: (m) => { if (m && seen[seen.length - 1] !== m.status) seen.push(m.status); modelStatus.textContent = `Model ${model.name}: ${seen.join(" → ")}`; } });
      if (!final || final.status === "failed") throw new Error(`Training failed: ${final?.error || "the model is gone"}.`);
      box.show(`Model ${final.name} is ${final.status}.`, "ok");
    } finally { busy(trainBtn, false); }
  }));

  predictBtn.addEventListener("click", guarded(box, async () => {
    if (!checks.files.length) throw new Error("Choose images to check.");
    busy(predictBtn, true, "Checking…");
    verdicts.replaceChildren();
    try {
      const ids = (await upload(checks.files, { training: "false" })).data.item_ids;
      await call("/api/v1/serve", { method: "POST", ...C, json: { item_ids: ids, model_id: "" } });
      const items = await poll(() => Promise.all(ids.map((id) =>
        call(`/api/v1/item/${encodeURIComponent(id)}?show_annotations=True&show_assessments=True`, C).then((r) => r.data))),
      (xs) => xs.every((x) => x.status === "done" || x.status === "failed"));
      for (const item of items) verdicts.append(await itemCard(item));
    } finally { busy(predictBtn, false); }
  }));
}

async function itemCard(item) {
  const good = item.computed_assessment ? item.computed_assessment.good : null;
  const latest = (item.assessments || [])[0];
  const card = el("article", { class: "card", "aria-label": `Item ${item.item_id}` },
    el("h3", {}, `${item.item_id} `, el("span", { class: `badge ${good ? "ok" : "bad"}` },
      item.status === "failed" ? "failed" : good ? "OK — no defect found" : "NG — defect found")),
    latest ? el("p", { class: "hint" }, `Confidence ${latest.detection_accuracy} %, score ${Number(latest.score).toFixed(2)}, model #${latest.model_id}.`) : null);
  for (const image of item.images || []) {
    const raw = el("img", { src: await imageUrl(image.raw_url), alt: `${item.item_id}: the photo with the defects boxed` });
    const overlay = el("div", { class: "overlay" }, raw);
    for (const b of image.detected_boxes || []) {
      overlay.append(el("div", { class: "det", style: {
        left: `${(100 * b.x_min) / image.width}%`, top: `${(100 * b.y_min) / image.height}%`,
        width: `${(100 * (b.x_max - b.x_min)) / image.width}%`, height: `${(100 * (b.y_max - b.y_min)) / image.height}%` } }));
    }
    const figures = [el("figure", {}, overlay, el("figcaption", {}, `${(image.detected_boxes || []).length} box(es)`))];
    if (image.processed) {
      figures.push(el("figure", {}, el("img", { src: await imageUrl(image.url), alt: `${item.item_id}: anomaly heatmap` }),
        el("figcaption", {}, "heatmap (red: unlike the good products)")));
    }
    card.append(el("div", { class: "pair inspection-pair" }, figures));
  }
  return card;
}

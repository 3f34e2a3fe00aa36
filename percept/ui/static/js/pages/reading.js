// Reading: a page (photo or typed text) and a recording (file or microphone) -> the words
// misread, marked by kind on the page, a summary, and each word's stretch of audio.
import { call, poll } from "../api.js";
import { el, field, guarded, messageBox, progressBar, busy, pct, secs, section, blobUrl } from "../ui.js";

export const KINDS = {
  correct: ["read correctly", ""],
  substitution: ["read as another word", "≠"],
  omission: ["skipped", "∅"],
  insertion: ["added", "+"],
  repetition: ["repeated", "↻"],
  self_correction: ["self-corrected", "✓"],
};

function options(select, models, preferred) {
  select.replaceChildren(...models.map((m) => el("option", { value: m.name }, `${m.name} — ${m.description}`)));
  const pick = models.find((m) => m.name === preferred);
  if (pick) select.value = pick.name;
}

export async function render(root) {
  const box = messageBox();
  const progress = progressBar("Assessment progress");
  const results = el("div", { id: "reading-results" });

  const pageKind = el("fieldset", {}, el("legend", {}, "The page"),
    el("label", {}, el("input", { type: "radio", name: "pagekind", value: "photo", checked: true }), " A photo of the page"), " ",
    el("label", {}, el("input", { type: "radio", name: "pagekind", value: "text" }), " Type the text"));
  const photo = el("input", { type: "file", accept: "image/*", name: "page" });
  const text = el("textarea", { name: "text", placeholder: "The text the reader should read" });
  const photoField = field("Page photo", photo, "A clear photo or scan, PNG or JPEG.");
  const textField = field("Text", text);
  textField.hidden = true;
  pageKind.addEventListener("change", () => {
    const typed = pageKind.querySelector("input:checked").value === "text";
    photoField.hidden = typed;
    textField.hidden = !typed;
  });

  const audio = el("input", { type: "file", accept: "audio/*", name: "recording" });
  const recordBtn = el("button", { type: "button", class: "secondary" }, "Record with the microphone");
  const recordState = el("span", { class: "hint", "aria-live": "polite" });
  let recorded = null;
  let recorder = null;
  recordBtn.addEventListener("click", guarded(box, async () => {
    if (recorder && recorder.state === "recording") {
      recorder.stop();
      return;
    }
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      throw new Error("This browser cannot record here (recording needs https or localhost). Choose a recording file instead.");
    }
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      recorded = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
      recordState.textContent = `Recorded ${Math.round(recorded.size / 1024)} KB; it will be used instead of a file.`;
      recordBtn.textContent = "Record again";
    };
    recorder.start();
    recordBtn.textContent = "Stop recording";
    recordState.textContent = "Recording… read the page aloud, then press Stop.";
  }));

  const audioModel = el("select", { name: "audio_model" });
  const imageModel = el("select", { name: "image_model" });
  const submit = el("button", { type: "submit" }, "Assess the reading");
  const form = el("form", { class: "card", "aria-label": "New reading assessment" },
    pageKind, photoField, textField,
    field("Recording", audio, "MP3, WAV, M4A, OGG or WebM."),
    el("div", { class: "row" }, recordBtn, recordState),
    el("details", {}, el("summary", {}, "Models"),
      el("div", { class: "grid2" }, field("Speech model", audioModel), field("OCR model", imageModel))),
    el("div", { class: "row" }, submit), progress, box);

  root.append(el("h1", {}, "Reading"),
    el("p", { class: "lead" }, "See which words a reader misread, and hear each one."), form, results);

  try {
    const [a, i] = await Promise.all([call("/v1/audio/models"), call("/v1/image/models")]);
    options(audioModel, a.models, "faster_whisper");
    options(imageModel, i.models, "tesseract");
  } catch (err) {
    box.show(err.message, "error");
  }

  form.addEventListener("submit", guarded(box, async () => {
    const typed = pageKind.querySelector("input:checked").value === "text";
    const recording = recorded || audio.files[0];
    if (!recording) throw new Error("Choose a recording, or record one with the microphone.");
    if (typed && !text.value.trim()) throw new Error("Type the text of the page.");
    if (!typed && !photo.files[0]) throw new Error("Choose a photo of the page, or type the text.");
    busy(submit, true, "Working…");
    results.replaceChildren();
    try {
      progress.set(0, "uploading the recording");
      const af = new FormData();
      af.append("upload_file", recording, recording.name || "recording.webm");
      const audioId = (await call("/v1/audio/upload", { method: "POST", form: af })).file_id;
      let imageId = null;
      let task;
      if (typed) {
        task = await call("/v1/comparison/audio/text/task", { method: "POST", json: {
          audio_file: audioId, text: [text.value.trim()], audio_model: audioModel.value } });
      } else {
        progress.set(0, "uploading the page");
        const pf = new FormData();
        pf.append("upload_file", photo.files[0]);
        imageId = (await call("/v1/image/upload", { method: "POST", form: pf })).file_id;
        task = await call("/v1/comparison/audio/image/task", { method: "POST", json: {
          audio_file: audioId, image_file: imageId, audio_model: audioModel.value, image_model: imageModel.value } });
      }
      const state = await poll(() => call(`/v1/task/status?task_id=${task.task_id}`),
        (s) => s.ready || s.status === "failed",
        { onState: (s) => progress.set(s.progress ?? (s.ready ? 100 : 0), s.status) });
      if (state.status === "failed") throw new Error(`The assessment failed: ${state.reason || "no reason given"}.`);
      progress.set(100, "done");
      const kind = typed ? "text" : "image";
      const result = await call(`/v1/comparison/audio/${kind}/result?task_id=${task.task_id}`);
      const audioBlob = await call(`/v1/audio/download?file=${audioId}`, { blob: true });
      const pageBlob = imageId ? await call(`/v1/image/download?file=${imageId}`, { blob: true }) : null;
      showResult(results, result, audioBlob, pageBlob);
      box.show("Assessment ready.", "ok");
    } finally {
      busy(submit, false);
    }
  }));
}

function showResult(root, result, audioBlob, pageBlob) {
  const report = result.report || {};
  const summary = report.summary || {};
  const words = report.words || [];
  const player = el("audio", { controls: true, src: blobUrl(audioBlob), preload: "auto", "aria-label": "The recording" });
  const nowPlaying = el("p", { class: "hint", "aria-live": "polite" });
  let stopAt = null;
  player.addEventListener("timeupdate", () => {
    if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
  });
  function play(word) {
    if (word.start === null || word.start === undefined) {
      nowPlaying.textContent = `“${word.word}” was not read: there is no audio for it.`;
      return;
    }
    const start = Math.max(0, Number(word.start) - 0.15);
    stopAt = Number(word.end ?? word.start) + 0.15;
    player.currentTime = start;
    player.play().catch(() => {});
    const said = word.spoken && word.spoken !== word.word ? ` (heard “${word.spoken}”)` : "";
    nowPlaying.textContent = `Playing “${word.word || word.spoken}”${said}: ${secs(word.start)} – ${secs(word.end ?? word.start)}, ${KINDS[word.status]?.[0] || word.status}.`;
  }
  function label(w) {
    const what = KINDS[w.status]?.[0] || w.status;
    const said = w.spoken && w.status !== "correct" ? `, heard “${w.spoken}”` : "";
    return `${w.word || w.spoken}: ${what}${said}. Play`;
  }

  const counts = summary.counts || {};
  const misread = words.filter((w) => w.status !== "correct");
  const stats = el("ul", { class: "stats" },
    el("li", {}, el("b", {}, summary.accuracy !== undefined ? pct(summary.accuracy) : "–"), "accuracy"),
    el("li", {}, el("b", {}, summary.wcpm !== undefined && summary.wcpm !== null ? Math.round(summary.wcpm) : "–"), "words correct per minute"),
    el("li", {}, el("b", {}, `${summary.reference_words ?? "–"}`), "words on the page"),
    el("li", {}, el("b", {}, `${misread.length}`), "marked words"),
    el("li", {}, el("b", {}, summary.reading_time_s !== undefined ? secs(summary.reading_time_s) : "–"), "reading time"),
    el("li", {}, el("b", {}, `${(summary.long_pauses || []).length}`), "long pauses"));
  const legend = el("ul", { class: "legend", "aria-label": "Legend" },
    Object.entries(KINDS).filter(([k]) => k !== "correct").map(([k, [text, mark]]) =>
      el("li", {}, el("span", { class: "swatch", style: { background: `var(--k-${k})` } }), `${mark} ${text} (${counts[k] || 0})`)));

  const textView = el("p", { class: "words", "aria-label": "The text, each word a button that plays it" },
    words.map((w) => el("button", { type: "button", class: "word", "data-status": w.status, "aria-label": label(w),
      onclick: () => play(w) }, w.word || w.spoken,
      KINDS[w.status]?.[1] ? el("span", { class: "mark", "aria-hidden": "true" }, KINDS[w.status][1]) : null)));

  const pauses = (summary.long_pauses || []).map((p) =>
    el("li", {}, `${secs(p.duration)} after “${p.after ?? "the start"}”, before “${p.before ?? "the end"}” (at ${secs(p.start)})`));

  const parts = [section("Summary", stats, legend, player, nowPlaying)];
  if (pageBlob && result.image) parts.push(section("The page", pageView(result, words, pageBlob, play, label)));
  parts.push(section("The text", textView));
  if (pauses.length) parts.push(section("Long pauses", el("ul", {}, pauses)));
  root.replaceChildren(...parts);
}

function pageView(result, words, pageBlob, play, label) {
  const img = el("img", { src: blobUrl(pageBlob), alt: "The page, with the misread words marked" });
  const view = el("div", { class: "page-view" }, img);
  img.addEventListener("load", () => {
    const W = img.naturalWidth;
    const H = img.naturalHeight;
    for (const w of words) {
      if (w.box === null || w.box === undefined || w.status === "correct") continue;
      const b = result.image.boxes[w.box];
      if (!b) continue;
      const c = b.coordinates;
      const xs = [c.left_top.x, c.right_top.x, c.right_bottom.x, c.left_bottom.x];
      const ys = [c.left_top.y, c.right_top.y, c.right_bottom.y, c.left_bottom.y];
      const x0 = Math.min(...xs); const y0 = Math.min(...ys);
      view.append(el("button", { type: "button", class: "box", "data-status": w.status, "aria-label": label(w),
        title: label(w), onclick: () => play(w),
        style: { left: `${(100 * x0) / W}%`, top: `${(100 * y0) / H}%`,
          width: `${(100 * (Math.max(...xs) - x0)) / W}%`, height: `${(100 * (Math.max(...ys) - y0)) / H}%` } }));
    }
  });
  return view;
}

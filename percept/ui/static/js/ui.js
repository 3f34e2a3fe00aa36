// Small DOM helpers shared by the pages.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let uid = 0;
export function nextId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

// A labelled form control: returns [wrapper, control].
export function field(label, control, hint) {
  const id = control.id || nextId("field");
  control.id = id;
  const hintNode = hint ? el("small", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
  return el("div", { class: "field" }, el("label", { for: id }, label), control, hintNode);
}

// A message region: info / error / ok, announced to screen readers.
export function messageBox() {
  const box = el("div", { class: "message", role: "status", "aria-live": "polite", hidden: true });
  box.show = (text, kind = "info") => {
    box.hidden = !text;
    box.className = `message ${kind}`;
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.textContent = text || "";
  };
  box.clear = () => box.show("");
  return box;
}

// A labelled progress bar (0-100) with a line of text under it.
export function progressBar(label) {
  const bar = el("progress", { max: "100", value: "0", "aria-label": label });
  const text = el("span", { class: "progress-text" }, "");
  const wrap = el("div", { class: "progress", hidden: true }, bar, text);
  wrap.set = (value, message = "") => {
    wrap.hidden = false;
    bar.value = Math.max(0, Math.min(100, Number(value) || 0));
    bar.setAttribute("aria-valuenow", String(bar.value));
    text.textContent = `${Math.round(bar.value)} %${message ? ` — ${message}` : ""}`;
  };
  return wrap;
}

export function busy(button, on, text) {
  if (on) {
    button.dataset.label = button.textContent;
    button.disabled = true;
    if (text) button.textContent = text;
  } else {
    button.disabled = false;
    if (button.dataset.label) button.textContent = button.dataset.label;
  }
}

export function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export function pct(x, digits = 0) {
  return `${(100 * Number(x)).toFixed(digits)} %`;
}

export function secs(x) {
  return `${Number(x).toFixed(1)} s`;
}

export function blobUrl(blob) {
  return URL.createObjectURL(blob);
}

export function section(title, ...children) {
  const id = nextId("sec");
  return el("section", { class: "card", "aria-labelledby": id }, el("h2", { id }, title), ...children);
}

// Wrap an async handler so its ApiError lands in ``box`` in plain words.
export function guarded(box, fn) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    box.clear();
    try {
      await fn(event);
    } catch (err) {
      console.debug(err);  // handled: the user sees it in plain words
      box.show(err && err.message ? err.message : String(err), "error");
    }
  };
}

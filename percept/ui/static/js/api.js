// Calls to the services' own routes, with the services' own auth, and errors in plain words.

const USER_KEY = "percept.user";
const CLIENT_KEY = "percept.inspection";

export class ApiError extends Error {
  constructor(message, status, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

export const session = {
  get user() {
    try { return JSON.parse(sessionStorage.getItem(USER_KEY) || "null"); } catch { return null; }
  },
  set user(value) {
    if (value) sessionStorage.setItem(USER_KEY, JSON.stringify(value));
    else sessionStorage.removeItem(USER_KEY);
  },
  get client() {
    try { return JSON.parse(sessionStorage.getItem(CLIENT_KEY) || "null"); } catch { return null; }
  },
  set client(value) {
    if (value) sessionStorage.setItem(CLIENT_KEY, JSON.stringify(value));
    else sessionStorage.removeItem(CLIENT_KEY);
  },
};

// The text a service put in its error body, whichever contract it follows.
function detailOf(body) {
  if (!body || typeof body !== "object") return typeof body === "string" ? body : "";
  if (body.errors) {  // the inspection contract
    const e = body.errors;
    const d = Array.isArray(e.detail) ? e.detail.join("; ") : e.detail;
    return [e.title, d].filter(Boolean).join(": ");
  }
  if (body.error) return body.error;  // the tagger's Detect envelope
  if (Array.isArray(body.detail)) {  // FastAPI validation errors
    return body.detail.map((d) => `${(d.loc || []).slice(1).join(".") || "request"}: ${d.msg}`).join("; ");
  }
  return body.detail ? String(body.detail) : "";
}

// One sentence a person can act on, for a failed call.
export function plainWords(status, detail) {
  const said = detail ? ` (the server said: ${detail})` : "";
  if (status === 0) return "Percept did not answer. Check that the server is running and try again.";
  if (status === 401) return `You are not signed in, or your sign-in has expired. Sign in again${said}.`;
  if (status === 403) return `This is not allowed${said}.`;
  if (status === 404) return `Not found${said}.`;
  if (status === 409) return `Not ready yet${said}.`;
  if (status === 413) return `That file is too large${said}.`;
  if (status === 422 || status === 400) return `Percept could not use what was sent${said}.`;
  if (status === 429) return `Too many requests in a short time; wait a minute and try again${said}.`;
  if (status === 503) return `This part of Percept is not available right now${said}.`;
  return `Something went wrong on the server (error ${status})${said}.`;
}

// fetch() with a bearer token; answers parsed JSON (or a Blob with {blob: true}); throws ApiError.
export async function call(path, { method = "GET", json, form, body, token, auth = "user",
                                   blob = false, headers = {} } = {}) {
  const h = { ...headers };
  const bearer = token ?? (auth === "user" ? session.user?.token : auth === "client" ? session.client?.token : null);
  if (bearer) h.Authorization = `Bearer ${bearer}`;
  let payload = body;
  if (json !== undefined) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  } else if (form) {
    payload = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers: h, body: payload });
  } catch (err) {
    throw new ApiError(plainWords(0), 0, String(err));
  }
  if (!response.ok) {
    let parsed = null;
    const text = await response.text();
    try { parsed = JSON.parse(text); } catch { parsed = text.slice(0, 300); }
    const detail = detailOf(parsed);
    if (response.status === 401 && auth === "user" && bearer) session.user = null;
    throw new ApiError(plainWords(response.status, detail), response.status, detail);
  }
  if (blob) return response.blob();
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

// Poll ``fetchState`` until ``done(state)``; ``onState`` sees every answer. Bounded by ``timeoutMs``.
export async function poll(fetchState, done, { onState = () => {}, intervalMs = 700, timeoutMs = 600000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await fetchState();
    onState(state);
    if (done(state)) return state;
    if (Date.now() > deadline) throw new ApiError("This is taking longer than expected; look again later.", 0, "");
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

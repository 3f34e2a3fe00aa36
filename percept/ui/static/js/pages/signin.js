// Sign in with the services' own password flow (/v1/auth/token), or register first.
import { call, session } from "../api.js";
import { el, field, guarded, messageBox, busy } from "../ui.js";

export function render(root, { renderWho }) {
  const box = messageBox();
  const username = el("input", { type: "text", name: "username", autocomplete: "username", required: true });
  const password = el("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const signIn = el("button", { type: "submit" }, "Sign in");
  const register = el("button", { type: "button", class: "secondary" }, "Create account");

  async function token() {
    const body = new URLSearchParams({ username: username.value.trim(), password: password.value });
    const answer = await call("/v1/auth/token", {
      method: "POST", body, auth: "none",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    });
    session.user = { username: username.value.trim(), token: answer.access_token };
    renderWho();
    const after = sessionStorage.getItem("percept.after") || "";
    sessionStorage.removeItem("percept.after");
    location.hash = `#/${after}`;
  }

  function check() {
    if (!username.value.trim() || !password.value) {
      throw new Error("Enter a user name and a password.");
    }
  }

  const form = el("form", { class: "card", "aria-labelledby": "signin-h" },
    el("h2", { id: "signin-h" }, "Your account"),
    field("User name", username),
    field("Password", password),
    el("div", { class: "row" }, signIn, register),
    box);
  form.addEventListener("submit", guarded(box, async () => {
    check();
    busy(signIn, true, "Signing in…");
    try {
      await token();
    } catch (err) {
      if (err.status === 401) throw new Error("That user name and password do not match an account. Check them, or create an account.");
      throw err;
    } finally { busy(signIn, false); }
  }));
  register.addEventListener("click", guarded(box, async () => {
    check();
    busy(register, true, "Creating…");
    try {
      const q = new URLSearchParams({ username: username.value.trim(), password: password.value });
      await call(`/v1/auth/register?${q}`, { method: "PUT", auth: "none" });
      await token();
    } catch (err) {
      if (err.detail === "Username is already taken") throw new Error("That user name is taken. Choose another, or sign in.");
      throw err;
    } finally { busy(register, false); }
  }));
  root.append(el("h1", {}, "Sign in"),
    el("p", { class: "lead" }, "The same account works for reading, search, correction and the API."), form);
  username.focus();
}

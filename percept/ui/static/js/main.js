// The console's shell: hash routes (#/reading …), the signed-in user, the menu on phones.
import { session } from "./api.js";
import { el } from "./ui.js";

const PAGES = {
  "": () => import("./pages/home.js"),
  signin: () => import("./pages/signin.js"),
  reading: () => import("./pages/reading.js"),
  inspection: () => import("./pages/inspection.js"),
  correction: () => import("./pages/correction.js"),
  search: () => import("./pages/search.js"),
  tagger: () => import("./pages/tagger.js"),
  status: () => import("./pages/status.js"),
};
// Pages that need a user token (the tagger's contract has no auth; status is public).
const NEEDS_USER = new Set(["reading", "correction", "search"]);

let cleanup = null;
// Each route() call takes a number; one that a later call has overtaken (a sign-in that moves
// on to its page while the user already chose another) stops at its next await and leaves the
// page alone, so the last page chosen is the page shown.
let routing = 0;

function renderWho() {
  const who = document.getElementById("who");
  who.replaceChildren();
  const user = session.user;
  if (user) {
    who.append(el("span", {}, `Signed in as ${user.username}`), " ",
      el("button", { type: "button", class: "link", onclick: () => { session.user = null; session.client = null; location.hash = "#/signin"; renderWho(); } }, "Sign out"));
  } else {
    who.append(el("a", { href: "#/signin" }, "Sign in"));
  }
}

export async function route() {
  const mine = ++routing;
  const name = location.hash.replace(/^#\/?/, "").split("?")[0];
  const page = name in PAGES ? name : "";
  if (NEEDS_USER.has(page) && !session.user) {
    sessionStorage.setItem("percept.after", page);
    location.hash = "#/signin";
    return;
  }
  document.getElementById("nav").classList.remove("open");  // a chosen page folds the phone menu
  document.querySelector(".menu-toggle").setAttribute("aria-expanded", "false");
  if (cleanup) { try { cleanup(); } catch { /* a page that failed to clean up must not block */ } cleanup = null; }
  document.querySelectorAll("nav a").forEach((a) => {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  const main = document.getElementById("main");
  delete main.dataset.page;
  main.replaceChildren(el("p", { class: "loading" }, "Loading…"));
  const module = await PAGES[page]();
  if (mine !== routing) return;
  // the page renders into its own node; a later route replaces that node, so whatever an
  // overtaken render still does lands outside the document
  const view = el("div", { class: "view" });
  main.replaceChildren(view);
  const pageCleanup = (await module.render(view, { route, renderWho })) || null;
  if (mine !== routing) {
    if (pageCleanup) { try { pageCleanup(); } catch { /* overtaken page: nothing to keep */ } }
    return;
  }
  cleanup = pageCleanup;
  main.dataset.page = page || "home";
  renderWho();
  const heading = main.querySelector("h1");
  document.title = heading ? `${heading.textContent} · Percept` : "Percept console";
  main.focus({ preventScroll: true });
}

document.querySelector(".menu-toggle").addEventListener("click", (e) => {
  const nav = document.getElementById("nav");
  const open = nav.classList.toggle("open");
  e.currentTarget.setAttribute("aria-expanded", String(open));
});
window.addEventListener("hashchange", route);
route();

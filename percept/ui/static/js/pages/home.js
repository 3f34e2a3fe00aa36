import { session } from "../api.js";
import { el } from "../ui.js";

const CARDS = [
  ["reading", "Reading", "Photograph a page (or type it), record a reading, and see each misread word."],
  ["inspection", "Inspection", "Train a defect detector on good products and look at heatmaps and boxes."],
  ["correction", "Correction", "Find wrong labels, blurred and badly lit images in a dataset folder."],
  ["search", "Search", "Collect images from a web page, then search them by image, colour or text."],
  ["tagger", "Tagger", "Drop an image or a video and get its labels."],
  ["status", "Status", "Every part of Percept, and a link to the Ray dashboard."],
];

export function render(root) {
  const user = session.user;
  root.append(
    el("h1", {}, "Percept console"),
    el("p", { class: "lead" }, user ? `Welcome, ${user.username}. Choose a service.`
      : "Sign in (or create an account) to use the services."),
    !user ? el("p", {}, el("a", { href: "#/signin" }, "Sign in or create an account")) : null,
    el("div", { class: "grid2" }, CARDS.map(([page, title, text]) =>
      el("section", { class: "card" }, el("h2", {}, el("a", { href: `#/${page}` }, title)), el("p", {}, text)))),
  );
}

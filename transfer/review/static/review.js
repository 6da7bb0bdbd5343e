// The review page: one client of the JSON endpoints documented in docs/audit.md.
"use strict";

const token = document.querySelector('meta[name="review-token"]').content;
const page = { state: null, queue: "labels", cards: [], selected: 0, undo: [] };

async function api(path, body) {
  const options = { headers: { "X-Review-Token": token } };
  if (body !== undefined) {
    Object.assign(options, { method: "POST", body: JSON.stringify(body) });
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, options);
  if (!response.ok) throw new Error((await response.text()).trim());
  return response.json();
}

function element(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}

function say(message) {
  const status = document.getElementById("status");
  status.textContent = message;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => (status.textContent = ""), 4000);
}

function showWaiting(answer) {
  const waiting = document.getElementById("waiting");
  waiting.replaceChildren(
    answer.waiting === 0
      ? "No decision waits for a rerun."
      : `${answer.waiting} decision${answer.waiting === 1 ? " waits" : "s wait"} for a rerun: `,
  );
  if (answer.waiting > 0) waiting.append(element("code", { textContent: answer.command }), " then ",
    element("code", { textContent: "dvc metrics diff" }));
}

function showQueues() {
  const nav = document.getElementById("queues");
  nav.replaceChildren(...page.state.queues.map((queue) => {
    const count = queue.count === null ? "not run" : queue.count;
    const button = element("button", { textContent: `${queue.title} (${count})`, type: "button" });
    button.dataset.queue = queue.name;
    button.setAttribute("aria-current", String(queue.name === page.queue));
    button.addEventListener("click", () => openQueue(queue.name));
    return button;
  }));
  document.getElementById("classes").replaceChildren(
    ...page.state.classes.map((name) => element("li", { textContent: name })));
}

function decisionText(decision, pool = false) {
  if (!decision) return ["", ""];
  if (decision.action === "keep") return ["kept", "keep"];
  if (decision.action === "drop") {
    if (pool) return ["none of the classes", "drop"];
    return [`dropped${decision.reason ? ` (${decision.reason})` : ""}`, "drop"];
  }
  return [`${pool ? "labelled" : "moved to"} ${decision.action}`, "relabel"];
}

function photoUrl(path) {
  return `/api/photo?path=${encodeURIComponent(path)}&token=${encodeURIComponent(token)}`;
}

function actionButton(label, decide) {
  const button = element("button", { type: "button", textContent: label });
  button.addEventListener("click", (event) => { event.stopPropagation(); decide(); });
  return button;
}

function renderCard(card, index) {
  const figures = card.photos.map((photo, number) => {
    const [text, kind] = decisionText(photo.decision, card.pool);
    const caption = element("figcaption", {},
      `${card.group ? `${number + 1} · ` : ""}${photo.class} · ${photo.split}`,
      element("div", { className: `decision ${kind}`, textContent: text }));
    return element("figure", {},
      element("img", { src: photoUrl(photo.path), alt: photo.path, title: photo.path, loading: "lazy" }), caption);
  });
  const facts = element("dl", { className: "facts" });
  for (const [name, value] of card.facts) facts.append(element("dt", { textContent: name }), element("dd", { textContent: value }));
  if (card.leak) facts.append(element("dt", { textContent: "leak" }), element("dd", { className: "leak", textContent: "across splits" }));
  const actions = element("div", { className: "actions" });
  if (card.group) {
    card.photos.forEach((_, number) => actions.append(actionButton(`keep ${number + 1}, drop the rest`, () => decideOn(index, String(number + 1)))));
    actions.append(actionButton("keep all", () => decideOn(index, "k")));
  } else if (card.pool) {
    actions.append(actionButton(`accept: ${card.suggested}`, () => decideOn(index, "s")),
      actionButton("none of the classes", () => decideOn(index, "n")));
    page.state.classes.forEach((name, number) => actions.append(actionButton(`${number + 1} ${name}`, () => decideOn(index, String(number + 1)))));
  } else {
    actions.append(actionButton("keep", () => decideOn(index, "k")), actionButton("drop", () => decideOn(index, "d")),
      actionButton("none of the classes", () => decideOn(index, "n")), actionButton("ambiguous", () => decideOn(index, "a")));
    page.state.classes.forEach((name, number) => actions.append(actionButton(`${number + 1} ${name}`, () => decideOn(index, String(number + 1)))));
  }
  const article = element("article", { className: `card${card.group ? " group" : ""}${index === page.selected ? " selected" : ""}` },
    element("div", { className: "photos" }, ...figures), facts, actions);
  article.dataset.key = card.key;
  article.addEventListener("click", () => select(index));
  return article;
}

function renderCards(answer) {
  const section = document.getElementById("cards");
  if (answer.missing) return section.replaceChildren(element("p", { className: "empty", textContent: answer.missing }));
  if (page.cards.length === 0) return section.replaceChildren(element("p", { className: "empty", textContent: "Nothing to review here." }));
  section.replaceChildren(...page.cards.map(renderCard));
}

function select(index) {
  const cards = document.querySelectorAll("#cards .card");
  if (!cards.length) return;
  page.selected = Math.max(0, Math.min(index, cards.length - 1));
  cards.forEach((card, number) => card.classList.toggle("selected", number === page.selected));
  cards[page.selected].scrollIntoView({ block: "nearest" });
}

// What a key (or a button, which names its key) decides about a card: the decisions to write.
function decisionsFor(card, key) {
  const classes = page.state.classes;
  const paths = card.photos.map((photo) => photo.path);
  const number = Number(key);
  if (card.group) {
    if (key === "k") return paths.map((path) => ({ path, action: "keep" }));
    if (number >= 1 && number <= paths.length) {
      return paths.map((path, index) => (index === number - 1
        ? { path, action: "keep" } : { path, action: "drop", reason: "duplicate" }));
    }
    if (key === "d") return paths.map((path) => ({ path, action: "drop", reason: "duplicate" }));
    return null;
  }
  const [path] = paths;
  if (card.pool) {  // a photo to label: a class, or none of them (drop); nothing to keep
    if ((key === "s" || key === "Enter") && card.suggested) return [{ path, action: card.suggested }];
    if (key === "n" || key === "d") return [{ path, action: "drop" }];
    if (number >= 1 && number <= classes.length) return [{ path, action: classes[number - 1] }];
    return null;
  }
  const drops = { d: "", n: "none of the classes", a: "ambiguous" };
  if (key === "k") return [{ path, action: "keep" }];
  if (key in drops) return [{ path, action: "drop", reason: drops[key] }];
  if (key === "s" && card.suggested) return [{ path, action: card.suggested }];
  if (number >= 1 && number <= classes.length) return [{ path, action: classes[number - 1] }];
  return null;
}

function remember(written) {
  const byPath = new Map(written.map((row) => [row.path, row.action ? { action: row.action, reason: row.reason } : null]));
  page.cards.forEach((card, index) => {
    if (!card.photos.some((photo) => byPath.has(photo.path))) return;
    for (const photo of card.photos) if (byPath.has(photo.path)) photo.decision = byPath.get(photo.path);
    const old = document.querySelectorAll("#cards .card")[index];
    if (old) old.replaceWith(renderCard(card, index));
  });
}

async function decideOn(index, key) {
  const decisions = decisionsFor(page.cards[index], key);
  if (!decisions) return;
  try {
    const answer = await api("/api/decisions", { decisions });
    page.undo.push({ previous: answer.previous, index });
    remember(answer.written);
    showWaiting(answer);
    const first = answer.written[0];
    const text = decisionText(first.action ? first : null, page.cards[index].pool)[0] || "no decision";
    say(`${decisions.length === 1 ? decisions[0].path : `${decisions.length} photos`}: ${text}`);
    select(index + 1);
  } catch (error) {
    say(error.message);
  }
}

async function undo() {
  const last = page.undo.pop();
  if (!last) return say("Nothing to undo");
  try {
    const answer = await api("/api/undo", { previous: last.previous });
    remember(answer.written);
    showWaiting(answer);
    select(last.index);
    say("Undone");
  } catch (error) {
    page.undo.push(last);
    say(error.message);
  }
}

async function openQueue(name) {
  page.queue = name;
  const answer = await api(`/api/queues/${encodeURIComponent(name)}`);
  page.cards = answer.cards;
  page.selected = 0;
  showQueues();
  renderCards(answer);
  document.body.dataset.queue = name;
}

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.metaKey) return;
  if (event.ctrlKey) {
    if (event.key === "z") { event.preventDefault(); undo(); }
    return;
  }
  const next = { ArrowRight: 1, ArrowDown: 1, j: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
  if (next) { event.preventDefault(); return select(page.selected + next); }
  if (event.key === "Tab") {
    event.preventDefault();
    const names = page.state.queues.map((queue) => queue.name);
    const step = event.shiftKey ? names.length - 1 : 1;
    return openQueue(names[(names.indexOf(page.queue) + step) % names.length]);
  }
  if (event.key === "u") return undo();
  if (page.cards.length) decideOn(page.selected, event.key);
});

async function start() {
  try {
    page.state = await api("/api/state");
    showWaiting(page.state);
    const first = page.state.queues.find((queue) => queue.count) || page.state.queues[0];
    await openQueue(first.name);
    document.body.dataset.ready = "true";
  } catch (error) {
    say(error.message);
  }
}

start();

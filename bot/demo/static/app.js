// The demo page: a channel and a thread pane fed by Server-Sent Events from /demo/events, composers that post as
// the person, buttons that become block_actions. Each message is rendered once per version of it (the server
// sends a message again only when it changed), so charts already on screen stay put while the status updates.

import { renderMessage } from "./message.js";
import { el, renderMrkdwn } from "./mrkdwn.js";

const state = {
  messages: new Map(),   // key -> view
  users: new Map(),      // user id -> display name
  openThread: null,      // root ts of the thread in the side pane
  info: null,
};
const panes = {
  channel: { list: document.getElementById("channel-messages"), rendered: new Map(), stick: true, autoTop: 0 },
  thread: { list: document.getElementById("thread-messages"), rendered: new Map(), stick: true, autoTop: 0 },
};
const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
const ctx = {
  userName: (id) => state.users.get(id) || id,
  onAction: (element, blockId, button) => pressButton(element, blockId, button),
};
const hooks = {
  ctx,
  onOpenThread: (ts) => openThread(ts, { focus: true }),
  onImageLoad: (node) => keepAtBottom(node),
  onDismiss: (key) => postJson("/demo/dismiss", { key }).catch(() => {}),
};

// ------------------------------------------------------------------ helpers

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  return readAnswer(response);
}

async function readAnswer(response) {
  let answer = {};
  try { answer = await response.json(); } catch { answer = {}; }
  if (!response.ok || answer.ok === false) {
    throw new Error(answer.error || `The demo server answered HTTP ${response.status}.`);
  }
  return answer;
}

function paneViews(pane) {
  const all = [...state.messages.values()].sort((a, b) => parseFloat(a.ts) - parseFloat(b.ts));
  if (pane === "channel") return all.filter((v) => !v.thread_ts);
  if (!state.openThread) return [];
  return all.filter((v) => v.ts === state.openThread || v.thread_ts === state.openThread);
}

function isContinued(previous, view) {
  return Boolean(previous) && !previous.ephemeral && !view.ephemeral && previous.author.id === view.author.id
    && parseFloat(view.ts) - parseFloat(previous.ts) < 300;
}

function renderPane(name) {
  const pane = panes[name];
  const views = paneViews(name);
  const wasAtBottom = pane.stick || isAtBottom(pane.list);
  const nodes = [];
  const next = new Map();
  views.forEach((view, index) => {
    const inChannel = name === "channel";
    const continued = isContinued(views[index - 1], view) && !(name === "thread" && index === 1);
    const signature = JSON.stringify([view, continued]);
    const old = pane.rendered.get(view.key);
    const node = old && old.signature === signature ? old.node : renderMessage(view, { continued, inChannel }, hooks);
    next.set(view.key, { signature, node });
    nodes.push(node);
    if (name === "thread" && index === 0 && views.length > 1) nodes.push(threadDivider(views.length - 1));
  });
  pane.rendered = next;
  const keep = name === "channel" ? [document.getElementById("intro")] : [];
  reconcile(pane.list, [...keep, ...nodes]);
  if (wasAtBottom) scrollToBottom(pane);
}

function threadDivider(count) {
  const divider = el("div", "thread-divider");
  divider.append(el("span", "", `${count} ${count === 1 ? "reply" : "replies"}`));
  divider.setAttribute("role", "separator");
  return divider;
}

function reconcile(container, nodes) {
  let cursor = container.firstChild;
  for (const node of nodes) {
    if (node === cursor) { cursor = cursor.nextSibling; continue; }
    container.insertBefore(node, cursor);
  }
  while (cursor) {
    const after = cursor.nextSibling;
    cursor.remove();
    cursor = after;
  }
}

function isAtBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 60;
}

function scrollToBottom(pane) {
  pane.list.scrollTop = pane.list.scrollHeight;
  pane.autoTop = pane.list.scrollTop;
  pane.stick = true;
}

function keepAtBottom(node) {
  for (const pane of Object.values(panes)) {
    if (pane.list.contains(node) && pane.stick) scrollToBottom(pane);
  }
}

let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderPane("channel");
    if (state.openThread) renderPane("thread");
  });
}

// ------------------------------------------------------------------ thread pane

function openThread(ts, { focus }) {
  const thread = document.getElementById("thread");
  state.openThread = ts;
  panes.thread.rendered = new Map();
  panes.thread.stick = true;
  thread.hidden = false;
  document.getElementById("app").classList.add("with-thread");
  renderPane("thread");
  if (focus) document.getElementById("thread-text").focus();
}

function closeThread() {
  state.openThread = null;
  document.getElementById("thread").hidden = true;
  document.getElementById("app").classList.remove("with-thread");
  document.getElementById("channel-text").focus();
}

// ------------------------------------------------------------------ posting

function composerError(form, text) {
  form.querySelector(".composer-error").textContent = text || "";
}

async function send(form, files) {
  const textarea = form.querySelector("textarea");
  const text = textarea.value;
  if (!text.trim() && !files.length) return;
  const inThread = form.dataset.pane === "thread";
  const data = new FormData();
  data.append("text", text);
  data.append("tz", timeZone);
  if (inThread && state.openThread) data.append("thread_ts", state.openThread);
  for (const file of files) data.append("file", file, file.name);
  const button = form.querySelector(".send-button");
  button.disabled = true;
  composerError(form, "");
  try {
    const answer = await readAnswer(await fetch("/demo/messages", { method: "POST", body: data }));
    textarea.value = "";
    panes[inThread ? "thread" : "channel"].stick = true;
    if (!inThread && files.length && answer.ts) openThread(answer.ts, { focus: false });
  } catch (error) {
    composerError(form, error.message);
  } finally {
    button.disabled = false;
  }
}

async function shareExample(name) {
  const status = document.getElementById("channel-composer");
  composerError(status, "");
  try {
    const answer = await readAnswer(await fetch(`/demo/examples/${encodeURIComponent(name)}`, { method: "POST" }));
    panes.channel.stick = true;
    if (answer.ts) openThread(answer.ts, { focus: false });
  } catch (error) {
    composerError(status, error.message);
  }
}

async function pressButton(element, blockId, button) {
  const key = button.closest(".message")?.dataset.key;
  if (!key) return;
  if (element.confirm && !(await confirmDialog(element.confirm))) return;
  button.disabled = true;
  try {
    await postJson("/demo/actions", { key, action_id: element.action_id, value: element.value || "", block_id: blockId });
  } catch (error) {
    const form = state.openThread && button.closest("#thread") ? "thread-composer" : "channel-composer";
    composerError(document.getElementById(form), error.message);
  } finally {
    button.disabled = false;
  }
}

function confirmDialog(confirm) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = confirm.title?.text || "Are you sure?";
  const text = document.getElementById("confirm-text");
  text.replaceChildren(renderMrkdwn(confirm.text?.text || "", ctx));
  document.getElementById("confirm-ok").textContent = confirm.confirm?.text || "Yes";
  document.getElementById("confirm-deny").textContent = confirm.deny?.text || "Cancel";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

function wireComposer(form) {
  const textarea = form.querySelector("textarea");
  const input = form.querySelector(".file-input");
  form.addEventListener("submit", (event) => { event.preventDefault(); send(form, []); });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = "";
    if (files.length) send(form, files);
  });
  const pane = form.closest(".pane");
  let depth = 0;
  pane.addEventListener("dragenter", (event) => {
    if (!event.dataTransfer?.types.includes("Files")) return;
    depth += 1;
    pane.classList.add("dragging");
  });
  pane.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) pane.classList.remove("dragging");
  });
  pane.addEventListener("dragover", (event) => {
    if (event.dataTransfer?.types.includes("Files")) event.preventDefault();
  });
  pane.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    pane.classList.remove("dragging");
    const files = [...(event.dataTransfer?.files || [])];
    if (files.length) send(form, files);
  });
}

// ------------------------------------------------------------------ start

function showInfo(info) {
  state.info = info;
  state.users.set(info.user.id, info.user.name);
  state.users.set(info.bot.id, info.bot.name);
  document.getElementById("workspace-name").textContent = info.team;
  document.getElementById("topic").textContent = info.topic;
  document.getElementById("analyst").textContent = `Analyst: ${info.analyst} · sandbox: ${info.sandbox}`;
  const list = document.getElementById("examples");
  for (const example of info.examples) {
    const item = el("li");
    const button = el("button", "sidebar-item example-button");
    button.type = "button";
    button.append(el("span", "example-name", example.name),
      el("span", "example-meta", `${example.rows.toLocaleString()} rows · ${example.columns.slice(0, 3).join(", ")}…`));
    button.setAttribute("aria-label", `Share ${example.name} (${example.rows} rows: ${example.columns.join(", ")})`);
    button.addEventListener("click", () => shareExample(example.name));
    item.append(button);
    list.append(item);
  }
}

function connect() {
  const status = document.getElementById("connection");
  const events = new EventSource("/demo/events");
  events.addEventListener("open", () => {
    status.classList.add("connected");
    status.querySelector(".connection-text").textContent = "Connected to the bot";
  });
  events.addEventListener("error", () => {
    status.classList.remove("connected");
    status.querySelector(".connection-text").textContent = "Reconnecting…";
  });
  events.addEventListener("reset", () => { state.messages.clear(); render(); });
  events.addEventListener("message", (event) => {
    const view = JSON.parse(event.data);
    state.users.set(view.author.id, view.author.name);
    state.messages.set(view.key, view);
    render();
  });
  events.addEventListener("remove", (event) => {
    state.messages.delete(JSON.parse(event.data).key);
    render();
  });
}

async function start() {
  for (const form of document.querySelectorAll(".composer")) wireComposer(form);
  for (const suggestion of document.querySelectorAll(".suggestion")) {
    suggestion.addEventListener("click", () => {
      const textarea = document.getElementById("thread-text");
      textarea.value = suggestion.dataset.text;
      textarea.focus();
    });
  }
  document.getElementById("thread-close").addEventListener("click", closeThread);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.openThread && !document.getElementById("confirm").open) closeThread();
  });
  for (const pane of Object.values(panes)) {
    // Follow new messages until the person scrolls up; content growing under our own scroll (an image getting its
    // size) is not the person scrolling away.
    pane.list.addEventListener("scroll", () => {
      if (isAtBottom(pane.list)) pane.stick = true;
      else if (pane.list.scrollTop < pane.autoTop - 2) pane.stick = false;
    }, { passive: true });
  }
  showInfo(await (await fetch("/demo/info")).json());
  connect();
}

start();

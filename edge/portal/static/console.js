// The scan page's live console and status, over the console WebSocket (/ws/scans/{id}),
// authenticated by the session cookie. Scanner output is hostile: every line goes in with
// textContent, control characters replaced by visible pictures, never as markup.

const box = document.getElementById("console");
const state = document.getElementById("console-state");
const followButton = document.getElementById("follow");
const search = document.getElementById("console-search");
const searchCount = document.getElementById("search-count");
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

let last = 0;
let following = true;
let ended = false;
let retries = 0;

export function visible(text) {
  return String(text).replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    if (code < 0x20) return String.fromCharCode(0x2400 + code);
    return code === 0x7f ? "\u2421" : "\ufffd";
  });
}

function setState(text) {
  if (state) state.textContent = text;
}

function matches(line, needle) {
  return needle !== "" && line.textContent.toLowerCase().includes(needle);
}

function appendLine(frame) {
  if (frame.seq <= last) return; // already shown (replay overlap after a reconnect)
  last = frame.seq;
  const row = document.createElement("div");
  row.className = frame.stream === "stderr" ? "line stderr" : "line stdout";
  const seq = document.createElement("span");
  seq.className = "seq";
  seq.textContent = String(frame.seq);
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = visible(frame.text);
  row.append(seq, text);
  const needle = search ? search.value.trim().toLowerCase() : "";
  if (matches(row, needle)) row.classList.add("hit");
  box.append(row);
}

function scrollDown() {
  if (following) box.scrollTop = box.scrollHeight;
}

function setText(id, value) {
  const el = document.getElementById(id);
  if (el) el.textContent = visible(value);
}

async function refreshSections() {
  // The server's own rendering of the page, now that the scan ended: its findings and
  // details replace the ones drawn while it ran (all of it escaped by the server).
  try {
    const reply = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    if (!reply.ok) return;
    const doc = new DOMParser().parseFromString(await reply.text(), "text/html");
    for (const id of ["details", "config", "findings"]) {
      const fresh = doc.getElementById(id);
      const old = document.getElementById(id);
      if (fresh && old) old.replaceWith(document.adoptNode(fresh));
    }
  } catch (err) {
    setText("console-state", "scan ended; reload for its findings");
  }
}

function showStatus(scan) {
  const badge = document.getElementById("live-status");
  if (badge) {
    badge.dataset.status = scan.status;
    const span = badge.querySelector(".status") || badge;
    span.textContent = scan.status;
    span.className = `status status-${scan.status.replace(/[^a-z_]/g, "")}`;
  }
  setText("detail-status", scan.status);
  if (scan.exit_code !== null && scan.exit_code !== undefined) setText("detail-exit", scan.exit_code);
  if (scan.error) setText("detail-reason", scan.error);
  if (TERMINAL.has(scan.status)) {
    ended = true;
    const cancel = document.getElementById("cancel-form");
    if (cancel) cancel.remove();
    setState(`scan ${scan.status}`);
    refreshSections();
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const id = encodeURIComponent(box.dataset.scan);
  const ws = new WebSocket(`${scheme}://${location.host}/ws/scans/${id}?after_seq=${last}`);
  ws.addEventListener("open", () => {
    retries = 0;
    if (!ended) setState("live");
  });
  ws.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    if (frame.type === "line") {
      appendLine(frame);
      scrollDown();
    } else if (frame.type === "status") {
      showStatus(frame.scan);
    } else if (frame.type === "behind") {
      setState("catching up…");
    }
  });
  ws.addEventListener("close", (event) => {
    if (event.code === 1000) {
      if (!ended) setState("console ended");
      return;
    }
    if (event.code === 4401) {
      setState("signed out or token revoked: reload to sign in");
      return;
    }
    if (event.code === 1013 || event.code === 1011 || event.code === 1006 || event.code === 1012) {
      retries += 1;
      const wait = Math.min(1000 * retries, 10000);
      setState(`reconnecting (${visible(event.reason || event.code)})…`);
      setTimeout(connect, wait);
      return;
    }
    setState(`console closed: ${event.code} ${visible(event.reason)}`);
  });
}

function runSearch() {
  const needle = search.value.trim().toLowerCase();
  let hits = 0;
  let first = null;
  for (const line of box.children) {
    const hit = matches(line, needle);
    line.classList.toggle("hit", hit);
    if (hit) {
      hits += 1;
      first = first || line;
    }
  }
  searchCount.textContent = needle ? `${hits} matching line${hits === 1 ? "" : "s"}` : "";
  if (first) {
    following = false;
    followButton.textContent = "Follow";
    followButton.setAttribute("aria-pressed", "false");
    first.scrollIntoView({ block: "center" });
  }
}

if (box) {
  last = Number(box.dataset.after) || 0;
  followButton.hidden = false;
  search.hidden = false;
  followButton.addEventListener("click", () => {
    following = !following;
    followButton.textContent = following ? "Pause auto-scroll" : "Follow";
    followButton.setAttribute("aria-pressed", String(following));
    scrollDown();
  });
  box.addEventListener("wheel", (event) => {
    if (event.deltaY < 0 && following) followButton.click();
  });
  search.addEventListener("input", runSearch);
  scrollDown();
  if (box.dataset.terminal === "true") {
    ended = true;
  } else {
    connect();
  }
}

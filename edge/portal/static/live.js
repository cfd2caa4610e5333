// Lists that show scans still under way refresh their status in place: while a table
// holds a queued, launching or running scan, the page is fetched again every few seconds
// and each element marked `data-live` is swapped for the server's fresh rendering (parsed
// with DOMParser: its scripts never run). No reload, no scroll jump, filters kept.
const ACTIVE = '.status[data-status="queued"], .status[data-status="launching"], .status[data-status="running"]';
const EVERY = 4000;

async function refresh() {
  const live = document.querySelectorAll("[data-live]");
  const always = document.querySelector("[data-live-always]");
  if (live.length === 0 || (!always && !document.querySelector(ACTIVE)) || document.hidden) {
    return;
  }
  const reply = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
  if (!reply.ok || reply.redirected) return;
  const doc = new DOMParser().parseFromString(await reply.text(), "text/html");
  for (const old of live) {
    const fresh = old.id ? doc.getElementById(old.id) : null;
    if (fresh) old.replaceWith(document.adoptNode(fresh));
  }
}

function loop() {
  refresh()
    .catch(() => {})
    .finally(() => setTimeout(loop, EVERY));
}

setTimeout(loop, EVERY);

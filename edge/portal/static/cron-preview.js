// The schedule form's live preview: the next five fire times of the cron expression and
// time zone as typed, computed by the server (/schedules/preview) with the scheduler's own
// cron code. Without this module the form's "Preview runs" button shows the same list.
const form = document.getElementById("schedule-form");
const box = document.getElementById("cron-preview");

if (form && box) {
  const cron = form.elements.namedItem("cron");
  const zone = form.elements.namedItem("timezone");
  const list = document.getElementById("fire-times");
  let timer = 0;
  let asked = 0;

  const show = (times, problem) => {
    list.replaceChildren();
    document.getElementById("fire-none")?.remove();
    box.querySelector(".field-error")?.remove();
    for (const t of times) {
      const li = document.createElement("li");
      const local = document.createElement("span");
      local.className = "local";
      local.textContent = t.local;
      const utc = document.createElement("span");
      utc.className = "utc";
      utc.textContent = t.utc;
      li.append(local, utc);
      list.append(li);
    }
    if (problem) {
      const p = document.createElement("p");
      p.className = "field-error";
      p.setAttribute("role", "alert");
      p.textContent = problem;
      box.append(p);
    }
  };

  const refresh = async () => {
    const n = ++asked;
    const url = new URL(box.dataset.endpoint, location.href);
    url.searchParams.set("cron", cron.value);
    url.searchParams.set("timezone", zone.value);
    try {
      const reply = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const body = await reply.json();
      if (n !== asked) return; // a newer keystroke already asked
      if (reply.ok) show(body.times, "");
      else show([], `${body.field}: ${body.reason}`);
    } catch {
      if (n === asked) show([], "preview unavailable");
    }
  };

  for (const input of [cron, zone]) {
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(refresh, 200);
    });
  }
}

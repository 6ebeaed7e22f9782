/* The audit page: start an audit of a folder, rows stream in, filter by category. */
"use strict";

(() => {
  const { el } = FS;
  const rows = document.getElementById("rows");
  const status = document.getElementById("audit-status");
  let filter = "";
  let events = null;
  const counts = {};

  function applyFilter() {
    for (const tr of rows.children) tr.hidden = filter !== "" && tr.dataset.category !== filter;
    document.querySelectorAll(".filter").forEach((b) =>
      b.setAttribute("aria-pressed", String(b.dataset.category === filter)));
  }

  document.querySelectorAll(".filter").forEach((b) => b.addEventListener("click", () => {
    filter = b.dataset.category; applyFilter();
  }));

  function addRow(r) {
    const tr = el("tr", { "data-category": r.category, "data-outcome": r.outcome },
      el("td", { class: "file-name", text: r.file }),
      el("td", {}, FS.verdictBadge({ outcome: r.outcome, tier: r.tier })),
      el("td", { text: r.c2pa || "-" }),
      el("td", { text: (r.watermarks || []).join(", ") || "-" }),
      el("td", { text: r.ledger ? "matched" : "-" }),
      el("td", { text: r.headline || "" }));
    tr.hidden = filter !== "" && r.category !== filter;
    rows.append(tr);
    counts[r.category] = (counts[r.category] || 0) + 1;
    counts.all = (counts.all || 0) + 1;
    document.querySelectorAll("[data-count]").forEach((b) => { b.textContent = counts[b.dataset.count] || 0; });
  }

  document.getElementById("audit-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (events) events.close();
    rows.replaceChildren();
    Object.keys(counts).forEach((k) => delete counts[k]);
    status.classList.remove("error");
    document.getElementById("audit-out").hidden = false;
    status.textContent = "starting...";
    let job;
    try {
      job = (await FS.postJson("/api/audit/run", { folder: document.getElementById("folder").value })).job;
    } catch (err) {
      status.textContent = err.message; status.classList.add("error");
      return;
    }
    events = new EventSource(`/api/audit/${job}/events`);
    events.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      msg.rows.forEach(addRow);
      status.textContent = msg.total === null ? "finding images..." : `${msg.done} of ${msg.total} files`;
      if (msg.state !== "running") {
        events.close();
        status.dataset.state = msg.state;
        if (msg.state === "failed") { status.textContent = msg.error; status.classList.add("error"); return; }
        status.textContent = `done: ${msg.done} files`;
        for (const kind of ["csv", "json"]) {
          const a = document.getElementById(kind);
          a.href = `/api/audit/${job}/report.${kind}`;
          a.removeAttribute("aria-disabled");
        }
      }
    };
  });
})();

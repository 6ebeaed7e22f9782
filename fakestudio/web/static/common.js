/* fakestudio web: helpers every page shares. Plain JavaScript, no library, no build step.
   Text from reports (file names, metadata, signers) is only ever set with textContent. */
"use strict";

const FS = (() => {
  const OUTCOME_LABELS = {
    "labelled-ai": "Labelled AI-generated",
    "ai-watermark": "AI per watermark",
    "recovered": "Provenance recovered",
    "ai-metadata": "AI per metadata only",
    "credentials-not-ai": "Credentials, AI not declared",
    "no-provenance": "No provenance found",
    "tampered": "Tampered or invalid",
    "label-mismatch": "Label mismatch",
    "unreadable": "Unreadable",
  };
  const TIER_TEXT = {
    confirmed: "confirmed: the label checks out against the pixels and the signature",
    claimed: "claimed: a label says so, nothing confirms it",
    mismatch: "mismatch: the labels disagree with each other or with the pixels",
    none: "none: no label to go on",
  };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function pageData() {
    const node = document.getElementById("page-data");
    return node ? JSON.parse(node.textContent) : {};
  }

  async function postForm(url, fields) {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v, v.name || k);
    const resp = await fetch(url, { method: "POST", body: form, credentials: "same-origin" });
    return readJson(resp);
  }

  async function postJson(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    return readJson(resp);
  }

  async function readJson(resp) {
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const msg = (data && data.error) || `${resp.status} ${resp.statusText}`;
      const err = new Error(msg);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  function download(name, blob) {
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function pct(x) {
    return (x === null || x === undefined) ? "-" : `${Math.round(100 * x)}%`;
  }

  function verdictBadge(verdict) {
    const outcome = (verdict && verdict.outcome) || "unknown";
    const box = el("div", { class: "verdict" },
      el("span", { class: `badge outcome-${outcome}`, "data-outcome": outcome,
        text: OUTCOME_LABELS[outcome] || outcome }));
    if (verdict && verdict.tier) {
      box.append(el("span", { class: `tier tier-${verdict.tier}`, "data-tier": verdict.tier,
        title: TIER_TEXT[verdict.tier] || verdict.tier, text: `tier: ${verdict.tier}` }));
    }
    return box;
  }

  function section(title, gist, ...body) {
    return el("details", { class: "section" },
      el("summary", {}, el("span", { class: "section-title", text: title }),
        gist ? el("span", { class: "gist", text: gist }) : null), ...body);
  }

  function kvTable(rows) {
    const t = el("table", { class: "kv" });
    for (const [k, v] of rows) {
      if (v === null || v === undefined || v === "" || (Array.isArray(v) && !v.length)) continue;
      const shown = Array.isArray(v) ? v.join(", ") : (typeof v === "object" ? JSON.stringify(v) : String(v));
      t.append(el("tr", {}, el("th", { text: k }), el("td", { text: shown })));
    }
    return t;
  }

  function c2paSection(c2pa, thumbs) {
    c2pa = c2pa || {};
    const parts = [kvTable([
      ["state", c2pa.state],
      ["message", c2pa.message],
      ["signer", c2pa.signer],
      ["issuer", c2pa.issuer],
      ["signed", c2pa.signed_time],
      ["actions", c2pa.actions],
      ["digital source type", c2pa.digital_source_type],
      ["generator", c2pa.claim_generator],
      ["title", c2pa.title],
      ["soft binding", c2pa.soft_binding && `${c2pa.soft_binding.alg} ${c2pa.soft_binding.value}`],
    ])];
    const ingredients = (c2pa.ingredients || []);
    if (ingredients.length) {
      const shown = (thumbs && thumbs.shown) ? thumbs.ingredients : [];
      const list = el("ul", { class: "ingredients" });
      ingredients.forEach((title, i) => {
        const t = shown[i] && shown[i].thumbnail;
        list.append(el("li", {},
          t ? el("img", { src: t, alt: `thumbnail of ingredient ${title}` }) : null,
          el("span", { text: title })));
      });
      parts.push(el("h4", { text: "ingredients" }), list);
    }
    if (thumbs && thumbs.note) parts.push(el("p", { class: "note thumbs-note", text: thumbs.note }));
    const gist = c2pa.state === "absent" ? "absent" :
      [c2pa.state, c2pa.signer && `signed by ${c2pa.signer}`].filter(Boolean).join(", ");
    return section("Content Credentials", gist, ...parts);
  }

  function watermarkSection(marks) {
    const t = el("table", { class: "grid" },
      el("tr", {}, el("th", { text: "watermark" }), el("th", { text: "found" }),
        el("th", { text: "payload" }), el("th", { text: "confidence" })));
    for (const w of marks || []) {
      t.append(el("tr", { class: w.found ? "found" : "" },
        el("td", { text: w.scheme }), el("td", { text: w.found ? "yes" : "no" }),
        el("td", { text: w.payload || "-" }), el("td", { text: pct(w.confidence) })));
    }
    const found = (marks || []).filter((w) => w.found).map((w) => `${w.scheme} ${w.payload || ""}`.trim());
    return section("Invisible watermarks", found.length ? `found: ${found.join(", ")}` : "none found", t);
  }

  function metadataSection(meta) {
    meta = meta || {};
    const list = el("ul", {});
    for (const c of meta.claims || []) {
      list.append(el("li", { text: `${c.tool} (${c.kind}${c.ai ? ", AI" : ""}): ${c.summary || ""}` }));
    }
    if (!(meta.claims || []).length) list.append(el("li", { text: "no claims in the metadata" }));
    const tools = [...new Set((meta.claims || []).map((c) => c.tool))];
    return section("Metadata", tools.length ? `claims: ${tools.join(", ")} (unsigned)` : "no claims", list);
  }

  function ledgerSection(ledger, registry) {
    ledger = ledger || {};
    const rows = [
      ["checked", ledger.checked ? `yes (${ledger.entries} entries)` : "no"],
      ["matched", ledger.matched ? `yes, by ${ledger.how}` : "no"],
    ];
    if (ledger.entry) {
      rows.push(["output", ledger.entry.file_name], ["payload", ledger.entry.payload],
        ["created", ledger.entry.created]);
    }
    const parts = [kvTable(rows)];
    if (registry && registry.checked) {
      parts.push(el("h4", { text: "registry" }), kvTable([
        ["registry", registry.url], ["matched", registry.matched ? `yes, by ${registry.how}` : "no"],
        ["manifest", registry.manifest_id], ["content check", registry.binding_confirmed &&
          `${registry.binding_confirmed.method}, p=${registry.binding_confirmed.p_value}`],
        ["proves", registry.proves],
      ]));
    }
    let gist = ledger.matched ? `your ledger: matched by ${ledger.how}` :
      (ledger.checked ? "your ledger: no match" : "ledger not checked");
    if (registry && registry.checked) gist += registry.matched ? "; registry: matched" : "; registry: no match";
    return section("Ledger and registry", gist, ...parts);
  }

  /* One report as a card: verdict first, the "do not trust your eyes" text, then evidence. */
  function reportCard(report, opts) {
    opts = opts || {};
    const v = report.verdict || {};
    const card = el("article", { class: `card outcome-${v.outcome}`, "data-outcome": v.outcome });
    const head = el("header", { class: "card-head" },
      opts.preview ? el("img", { class: "thumb", src: opts.preview, alt: `preview of ${report.file}` }) : null,
      el("div", { class: "card-title" },
        el("h2", { class: "file-name", text: report.file }),
        verdictBadge(v),
        el("p", { class: "headline", text: v.headline || "" })));
    card.append(head);
    card.append(el("aside", { class: "eyes" }, el("span", { class: "message", text: v.message || "" })));
    if (report.image && report.image.readable) {
      card.append(el("p", { class: "facts", text:
        `${report.format || "?"} ${report.image.width}x${report.image.height}, ${report.size} bytes` }));
    }
    card.append(c2paSection(report.c2pa, opts.thumbnails));
    card.append(watermarkSection(report.watermarks));
    card.append(metadataSection(report.metadata));
    card.append(ledgerSection(report.ledger, report.registry));
    if ((report.notes || []).length) {
      card.append(section("Notes", `${report.notes.length}`, el("ul", {}, report.notes.map((n) => el("li", { text: n })))));
    }
    if (opts.download !== false) {
      card.append(el("div", { class: "actions" }, el("button", {
        type: "button", class: "download-json",
        onclick: () => download(`${report.file}.verify.json`,
          new Blob([JSON.stringify(report, null, 2)], { type: "application/json" })),
        text: "Download JSON (verify --json)",
      })));
    }
    return card;
  }

  function errorCard(name, message) {
    return el("article", { class: "card error-card" },
      el("h2", { class: "file-name", text: name }),
      el("p", { class: "error", text: message }));
  }

  /* The quiz's tally bars and its reveal, on the presenter's screen and on phones. */
  function showTally(root, tally) {
    const total = tally.total || 0;
    for (const side of ["a", "b"]) {
      const bar = root.querySelector(`.bar-${side}`);
      if (!bar) continue;
      bar.querySelector(".count").textContent = tally[side];
      bar.querySelector(".fill").style.width = total ? `${(100 * tally[side]) / total}%` : "0%";
    }
    const t = root.querySelector(".total");
    if (t) t.textContent = total;
  }

  function showReveal(root, answer) {
    const box = root.querySelector(".reveal");
    if (!box) return;
    if (!answer) { box.hidden = true; return; }
    box.querySelector(".answer").textContent =
      `${answer.fake.toUpperCase()} is the fake. ${answer.note}` +
      (answer.room_correct === null ? "" : ` The room: ${answer.room_correct}% right.`);
    const ev = box.querySelector(".evidence");
    ev.replaceChildren(...["a", "b"].map((k) => {
      const e = (answer.evidence || {})[k];
      return el("div", { class: "evidence-side" }, el("strong", { text: `${k.toUpperCase()}: ` }),
        e ? verdictBadge(e) : el("span", { text: "not checked" }),
        e ? el("span", { class: "headline", text: e.headline }) : null);
    }));
    box.querySelector(".baselines").textContent =
      answer.baselines.map((b) => `${b.label}: ${b.value}%`).join(" · ") + `. ${answer.baseline_note}`;
    box.hidden = false;
    root.classList.toggle("revealed", true);
    root.dataset.fake = answer.fake;
  }

  return { showTally, showReveal, el, pageData, postForm, postJson, readJson, download, pct, verdictBadge,
    reportCard, errorCard, section, kvTable, OUTCOME_LABELS };
})();

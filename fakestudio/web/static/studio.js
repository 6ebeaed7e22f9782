/* The studio: the form, live progress (server-sent events), the gallery with each label. */
"use strict";

(() => {
  const { el } = FS;
  const form = document.getElementById("form");
  const status = document.getElementById("status");
  const gallery = document.getElementById("gallery");
  const progress = document.getElementById("progress");
  const shown = new Map();  // file name -> gallery item
  let myJob = null;

  form.querySelectorAll(".lora-weight").forEach((r) => r.addEventListener("input", () => {
    r.nextElementSibling.textContent = Number(r.value).toFixed(2);
  }));

  function collect() {
    const val = (id) => document.getElementById(id).value;
    const ticked = [...form.querySelectorAll(".lora")].filter((d) => d.querySelector(".lora-use").checked);
    const enc = document.getElementById("encounter");
    const body = { prompt: val("prompt"), negative: val("negative"), seed: Number(val("seed")),
      steps: Number(val("steps")), n: Number(val("n")), sampler: val("sampler"), base: val("base"),
      loras: ticked.map((d) => ({ name: d.querySelector(".lora-use").value,
        weight: Number(d.querySelector(".lora-weight").value) })) };
    if (enc && enc.checked) { body.encounter = true; body.persons = body.loras.map((l) => l.name); body.loras = []; }
    return body;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.textContent = "";
    status.classList.remove("error");
    try {
      const res = await FS.postJson("/api/studio/generate", collect());
      myJob = res.job;
      progress.hidden = false;
      setProgress(0, 1, "queued");
    } catch (err) {
      status.textContent = err.message;
      status.classList.add("error");
    }
  });

  function setProgress(done, total, text) {
    document.getElementById("progress-fill").style.width = `${total ? (100 * done) / total : 0}%`;
    document.getElementById("progress-label").textContent = text;
    progress.dataset.done = done;
    progress.dataset.total = total;
  }

  async function addPicture(name, first) {
    if (shown.has(name)) return;
    const item = el("figure", { class: "pic", "data-name": name },
      el("img", { src: `/studio/file/${encodeURIComponent(name)}`, alt: name }),
      el("figcaption", {}, el("span", { class: "file-name", text: name }),
        el("span", { class: "label-state note", text: "reading its label..." })));
    shown.set(name, item);
    if (first) gallery.prepend(item); else gallery.append(item);
    try {
      const resp = await fetch(`/api/studio/label/${encodeURIComponent(name)}`, { credentials: "same-origin" });
      const rep = await FS.readJson(resp);
      const cap = item.querySelector("figcaption");
      item.dataset.outcome = rep.verdict.outcome;
      const marks = (rep.watermarks || []).filter((w) => w.found).map((w) => `${w.scheme} ${w.payload}`);
      cap.querySelector(".label-state").replaceWith(FS.verdictBadge(rep.verdict),
        el("span", { class: "note", text: `C2PA ${rep.c2pa.state}; watermark ${marks.join(", ") || "none"}` }),
        el("button", { type: "button", class: "secondary simulate", text: "Simulate an upload",
          onclick: () => simulate(name) }));
    } catch (err) {
      item.querySelector(".label-state").textContent = err.message;
    }
  }

  async function simulate(name) {
    const view = document.getElementById("upload-view");
    const cards = document.getElementById("upload-cards");
    cards.replaceChildren(el("p", { class: "note", text: "uploading, then verifying the copy..." }));
    view.hidden = false;
    try {
      const res = await FS.postJson("/api/studio/upload", { name, quality: 85 });
      const src = `/studio/file/${encodeURIComponent(name)}`;
      const a = FS.reportCard(res.original, { preview: src, download: false });
      a.classList.add("original");
      const b = FS.reportCard(res.copy, { download: false });
      b.classList.add("copy");
      cards.replaceChildren(a, b);
      view.scrollIntoView();
    } catch (err) {
      cards.replaceChildren(FS.errorCard(name, err.message));
    }
  }

  async function loadGallery() {
    const res = await FS.readJson(await fetch("/api/studio/gallery", { credentials: "same-origin" }));
    for (const name of res.images) addPicture(name, false);
  }

  const events = new EventSource("/api/studio/events");
  events.onmessage = (m) => {
    const s = JSON.parse(m.data);
    const job = s.jobs.find((j) => j.id === myJob);
    if (!job) return;
    const text = job.state === "running" ? `step ${job.done} of ${job.total}` : job.state;
    setProgress(job.done, job.total, text);
    progress.dataset.state = job.state;
    for (const name of [...job.images].reverse()) addPicture(name, true);
    if (job.state === "failed") { status.textContent = job.error; status.classList.add("error"); }
    if (job.state === "done") status.textContent = `done in ${job.seconds} s: ${job.images.length} labelled picture(s)`;
  };
  loadGallery();
})();

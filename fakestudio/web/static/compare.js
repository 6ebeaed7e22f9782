/* The Compare page: two pictures, both verified, an overlay slider, maps, the poster. */
"use strict";

(() => {
  const { el } = FS;
  const files = { a: null, b: null };
  let last = null;
  const status = document.getElementById("status");

  function setFile(side, file) {
    files[side] = file;
    const img = document.getElementById(`preview-${side}`);
    img.src = URL.createObjectURL(file);
    img.alt = file.name;
    img.hidden = false;
    if (files.a && files.b) run();
  }

  for (const side of ["a", "b"]) {
    const drop = document.getElementById(`drop-${side}`);
    const pick = document.getElementById(`pick-${side}`);
    pick.addEventListener("change", () => pick.files[0] && setFile(side, pick.files[0]));
    ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
      e.preventDefault(); drop.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      const f = e.dataTransfer.files[0];
      if (f) setFile(side, f);
    });
    drop.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick.click(); }
    });
  }

  const slider = document.getElementById("slider");
  const top = document.getElementById("overlay-a");
  function clip() {
    top.style.clipPath = `inset(0 ${100 - Number(slider.value)}% 0 0)`;
  }
  slider.addEventListener("input", clip);

  function setMap(id, url) {
    const img = document.getElementById(id);
    img.closest("figure").hidden = !url;
    if (url) img.src = url;
  }

  async function run() {
    status.textContent = "comparing...";
    document.getElementById("result").hidden = true;
    try {
      const res = await FS.postForm("/api/compare/view", { a: files.a, b: files.b });
      last = res.comparison;
      show(res);
      status.textContent = "";
    } catch (e) {
      status.textContent = `Could not compare: ${e.message}`;
      status.classList.add("error");
    }
  }

  function show(res) {
    const c = res.comparison;
    document.getElementById("overlay-a").src = document.getElementById("preview-a").src;
    document.getElementById("overlay-b").src = document.getElementById("preview-b").src;
    clip();
    const verdicts = document.getElementById("verdicts");
    verdicts.replaceChildren(
      ...["a", "b"].map((k) => el("div", { class: "side-verdict", "data-side": k },
        el("h3", { class: "file-name", text: `${k.toUpperCase()}: ${c[k].name}` }),
        FS.verdictBadge(c[k].verdict),
        el("p", { class: "headline", text: c[k].verdict.headline }),
        el("p", { class: "facts", text: `${c[k].format || "?"} ${c[k].width}x${c[k].height}` }))));
    const rows = Object.entries(c.hashes).map(([k, h]) =>
      [`${k} distance`, `${h.distance} of ${h.bits} bits (A ${h.a}, B ${h.b})`]);
    rows.push(["reading", c.hash_explanation]);
    rows.push(["SSIM", c.ssim === null ? c.ssim_note : `${c.ssim.toFixed(3)}: ${c.ssim_note}`]);
    for (const k of ["a", "b"]) {
      const s = c[k].spectrum || {};
      rows.push([`spectrum ${k.toUpperCase()}`,
        `high-frequency share ${(s.high_frequency_share || 0).toFixed(3)}, ${s.periodic_peaks || 0} isolated peaks`]);
    }
    document.getElementById("pixels").replaceChildren(...FS.kvTable(rows).children);
    setMap("map-ssim", res.maps.ssim);
    setMap("map-difference", res.maps.difference);
    setMap("map-spectrum-a", res.maps.spectrum_a);
    setMap("map-spectrum-b", res.maps.spectrum_b);
    document.getElementById("observations").replaceChildren(
      ...c.observations.map((o) => el("li", { text: o })),
      ...c.notes.map((n) => el("li", { class: "note", text: n })));
    document.getElementById("message").replaceChildren(
      el("strong", { text: `${c.message_title}. ` }), el("span", { text: c.message }));
    document.getElementById("result").hidden = false;
  }

  document.getElementById("json").addEventListener("click", () => {
    if (last) FS.download("compare.json", new Blob([JSON.stringify(last, null, 2)], { type: "application/json" }));
  });
  document.getElementById("poster").addEventListener("click", async (e) => {
    const button = e.currentTarget;
    button.disabled = true;
    status.textContent = "labelling the poster...";
    try {
      const form = new FormData();
      form.append("a", files.a, files.a.name);
      form.append("b", files.b, files.b.name);
      const resp = await fetch("/api/compare/poster", { method: "POST", body: form, credentials: "same-origin" });
      if (!resp.ok) throw new Error((await resp.json()).error);
      FS.download("poster.png", await resp.blob());
      status.textContent = "";
    } catch (err) {
      status.textContent = `Poster failed: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
})();

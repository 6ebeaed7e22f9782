/* The Verify page: drop, pick or paste images; one card per file from POST /api/inspect. */
"use strict";

(() => {
  const drop = document.getElementById("drop");
  const pick = document.getElementById("pick");
  const cards = document.getElementById("cards");

  async function check(file) {
    const preview = URL.createObjectURL(file);
    const pending = FS.el("article", { class: "card pending" },
      FS.el("h2", { class: "file-name", text: file.name || "pasted image" }),
      FS.el("p", { class: "headline", text: "checking..." }));
    cards.prepend(pending);
    try {
      const res = await FS.postForm("/api/inspect", { file });
      pending.replaceWith(FS.reportCard(res.report, { preview, thumbnails: res.thumbnails }));
    } catch (e) {
      pending.replaceWith(FS.errorCard(file.name || "pasted image", e.message));
    }
  }

  function checkAll(files) {
    // one at a time: the server verifies on as many CPUs as it has anyway
    let chain = Promise.resolve();
    for (const f of files) chain = chain.then(() => check(f));
    return chain;
  }

  pick.addEventListener("change", () => { checkAll([...pick.files]); pick.value = ""; });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    checkAll([...e.dataTransfer.files].filter((f) => f.type.startsWith("image/") || !f.type));
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick.click(); }
  });
  document.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData || {}).files || []].filter((f) => f.type.startsWith("image/"));
    if (files.length) checkAll(files);
  });
})();

/* The presenter: slides driven by the keyboard (arrows, space, F), the quiz rounds opened and
   revealed from here, the tally live from /api/quiz/events. */
"use strict";

(() => {
  const deck = document.getElementById("deck");
  if (!deck) return;
  const slides = [...deck.querySelectorAll(".slide")];
  const counter = document.getElementById("slide-no");
  let index = 0;
  let state = { round: null, phase: "waiting" };

  function current() { return slides[index]; }

  async function control(action, round) {
    try {
      state = await FS.postJson("/api/talk/round", { action, round });
      render(state);
    } catch (e) {
      counter.textContent = `quiz: ${e.message}`;
    }
  }

  async function loadReport(slide) {
    const box = slide.querySelector(".slide-report");
    if (!box || box.dataset.loaded) return;
    box.dataset.loaded = "1";
    try {
      const resp = await fetch(`/api/talk/report/${box.dataset.report}`, { credentials: "same-origin" });
      const report = await FS.readJson(resp);
      box.replaceChildren(FS.reportCard(report, { download: false,
        preview: `/talk/image/${box.dataset.report}` }));
    } catch (e) {
      box.replaceChildren(FS.errorCard("report", e.message));
    }
  }

  function show(i) {
    const before = current();
    index = Math.max(0, Math.min(slides.length - 1, i));
    slides.forEach((s, k) => { s.hidden = k !== index; });
    const slide = current();
    counter.textContent = `${index + 1} / ${slides.length}`;
    history.replaceState(null, "", `#${index + 1}`);
    if (slide.dataset.kind === "quiz") {
      const round = Number(slide.dataset.round);
      if (state.round !== round) control("open", round);
      else render(state);
    } else if (before && before.dataset.kind === "quiz" && state.round !== null) {
      control("close");
    }
    loadReport(slide);
  }

  function next() {
    const slide = current();
    if (slide.dataset.kind === "quiz" && state.round === Number(slide.dataset.round)
        && state.phase === "voting") {
      control("reveal", state.round);
      return;
    }
    show(index + 1);
  }

  function fullscreen() {
    const done = document.fullscreenElement ? document.exitFullscreen() : deck.requestFullscreen();
    if (done && done.catch) done.catch(() => {});
    deck.classList.toggle("full");
  }

  function render(s) {
    const slide = slides.find((x) => x.dataset.kind === "quiz" && Number(x.dataset.round) === s.round);
    if (!slide) return;
    FS.showTally(slide, s.tally);
    FS.showReveal(slide, s.phase === "revealed" ? s.answer : null);
  }

  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const k = e.key;
    if (["ArrowRight", "ArrowDown", "PageDown", " ", "Enter"].includes(k)) { e.preventDefault(); next(); }
    else if (["ArrowLeft", "ArrowUp", "PageUp", "Backspace"].includes(k)) { e.preventDefault(); show(index - 1); }
    else if (k === "Home") { e.preventDefault(); show(0); }
    else if (k === "End") { e.preventDefault(); show(slides.length - 1); }
    else if (k === "f" || k === "F") { e.preventDefault(); fullscreen(); }
  });

  const events = new EventSource("/api/quiz/events");
  events.onmessage = (m) => { state = JSON.parse(m.data); render(state); };

  const start = Number((location.hash || "#1").slice(1)) - 1;
  show(Number.isFinite(start) ? start : 0);
  deck.focus();
})();

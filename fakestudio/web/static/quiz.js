/* The audience: vote on the open round, watch the tally move, see the reveal. */
"use strict";

(() => {
  const waiting = document.getElementById("waiting");
  const round = document.getElementById("round");
  const voted = document.getElementById("voted");
  let state = FS.pageData().state || {};
  let shownRound = null;

  function render(s) {
    state = s;
    if (s.round === null || s.round === undefined) {
      waiting.hidden = false; round.hidden = true; shownRound = null;
      return;
    }
    waiting.hidden = true; round.hidden = false;
    if (shownRound !== s.round) {
      shownRound = s.round;
      document.getElementById("round-no").textContent = `round ${s.round + 1} of ${s.rounds}`;
      document.getElementById("img-a").src = s.images.a;
      document.getElementById("img-b").src = s.images.b;
      voted.textContent = "";
      round.classList.remove("revealed");
      round.querySelectorAll(".vote").forEach((b) => b.classList.remove("chosen"));
    }
    round.querySelectorAll(".vote").forEach((b) => { b.disabled = s.phase !== "voting"; });
    FS.showTally(round, s.tally);
    FS.showReveal(round, s.phase === "revealed" ? s.answer : null);
  }

  round.querySelectorAll(".vote").forEach((button) => button.addEventListener("click", async () => {
    try {
      const res = await FS.postJson("/api/quiz/vote", { round: state.round, choice: button.dataset.choice });
      round.querySelectorAll(".vote").forEach((b) => b.classList.toggle("chosen", b === button));
      voted.textContent = `You voted ${res.choice.toUpperCase()}. You can change your mind until the reveal.`;
      FS.showTally(round, res.tally);
    } catch (e) {
      voted.textContent = e.message;
    }
  }));

  render(state);
  const events = new EventSource("/api/quiz/events");
  events.onmessage = (m) => render(JSON.parse(m.data));
})();

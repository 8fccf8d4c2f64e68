// Keyboard labelling of one prompt's answers: the highlighted answer takes the next key;
// Backspace undoes the last label, Enter submits, S skips, F flags. No mouse needed.
(function () {
  "use strict";
  const root = document.getElementById("unit");
  if (!root) return;
  const scale = root.dataset.scale;
  const count = Number(root.dataset.count);
  const points = root.dataset.points.split("|");  // Likert points, 1 = least harmful
  const items = Array.from(root.querySelectorAll("li.answer"));
  const message = document.getElementById("message");
  const started = performance.now();
  const labels = {};  // letter -> rank (0 = N/A), 0/1, or a Likert point 1..4
  const history = [];  // letters in the order they were labelled
  let sending = false;

  function current() {
    return items.find((li) => !(li.dataset.letter in labels));
  }

  function render() {
    const next = current();
    for (const li of items) {
      const value = labels[li.dataset.letter];
      let text = "–";
      if (value !== undefined) {
        if (scale === "rank") text = value === 0 ? "N/A" : "rank " + value;
        else if (scale === "likert") text = value + ": " + points[value - 1];
        else text = value === 1 ? "harmful" : "not harmful";
      }
      li.querySelector(".label").textContent = text;
      li.classList.toggle("current", li === next);
    }
    if (next) next.scrollIntoView({ block: "nearest" });
  }

  function say(text) {
    message.textContent = text;
  }

  function give(value) {
    const li = current();
    if (!li) return say("Every answer is labelled: Enter submits, Backspace undoes.");
    if (scale === "rank" && value > 0 && Object.values(labels).includes(value)) {
      return say("Rank " + value + " is taken: no two harmful answers share a rank.");
    }
    labels[li.dataset.letter] = value;
    history.push(li.dataset.letter);
    say("");
    render();
  }

  async function send(action, note) {
    if (sending) return;
    if (action === "labelled" && current()) return say("Label every answer first.");
    sending = true;
    const body = {
      action: action,
      labels: action === "labelled" ? labels : null,
      note: note || "",
      seconds: (performance.now() - started) / 1000,
      guideline_version: Number(root.dataset.guidelineVersion),
    };
    try {
      const reply = await fetch(root.dataset.submit, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const data = await reply.json();
      if (!reply.ok) {
        sending = false;
        return say(data.error || "Not saved; try again.");
      }
      window.location.assign(data.next);
    } catch (err) {
      sending = false;
      say("Not saved (" + err + "); try again.");
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || sending) return;
    const key = event.key;
    if (scale === "rank" && /^[1-9]$/.test(key) && Number(key) <= count) give(Number(key));
    else if (scale === "likert" && /^[1-9]$/.test(key) && Number(key) <= points.length) {
      give(Number(key));
    } else if (scale !== "likert" && (key === "n" || key === "N")) give(0);
    else if (scale === "binary" && (key === "y" || key === "Y")) give(1);
    else if (key === "Backspace") {
      const last = history.pop();
      if (last !== undefined) delete labels[last];
      say("");
      render();
    } else if (key === "Enter") send("labelled");
    else if (key === "s" || key === "S") send("skipped");
    else if (key === "f" || key === "F") {
      const reason = window.prompt("Why flag this prompt?");
      if (reason !== null) send("flagged", reason);
    } else return;
    event.preventDefault();
  });

  render();
})();

// The rdc console's only script: follows an export's progress, and lets a click on the
// timeline's chart fill in the export's start and end. Everything works without it but the
// live progress (reload the page) and the chart clicks (type the times).
"use strict";

function followJob(box) {
  const bar = document.getElementById("bar");
  const text = document.getElementById("progress-text");
  const note = document.getElementById("note");
  const source = new EventSource(box.dataset.events);
  source.onmessage = (m) => {
    const j = JSON.parse(m.data);
    bar.value = j.percent;
    bar.textContent = Math.round(j.percent) + " %";
    text.textContent = j.progress;
    note.textContent = j.note;
    if (j.state !== "running") {
      source.close();
      // The finished page holds the bundle and its checks.
      window.location.reload();
    }
  };
  // The console restarted or the machine slept: EventSource reconnects by itself.
}

function pickRange(svg) {
  const from = Number(svg.dataset.from), to = Number(svg.dataset.to);
  const fromInput = document.getElementById("from"), toInput = document.getElementById("to");
  if (!fromInput || !toInput) return;
  let first = null;
  const mark = document.createElementNS("http://www.w3.org/2000/svg", "rect");
  mark.setAttribute("class", "pick");
  mark.setAttribute("y", "0");
  mark.setAttribute("height", "126");
  mark.setAttribute("width", "0");
  svg.appendChild(mark);
  const iso = (ns) => new Date(Math.round(ns / 1e6)).toISOString().replace(/\.\d+Z$/, "Z");
  svg.addEventListener("click", (e) => {
    const r = svg.getBoundingClientRect();
    const frac = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    const t = from + frac * (to - from);
    const x = frac * 1000;
    if (first === null) {
      first = { t, x };
      fromInput.value = iso(t);
      mark.setAttribute("x", String(x));
      mark.setAttribute("width", "2");
    } else {
      const a = Math.min(first.t, t), b = Math.max(first.t, t);
      fromInput.value = iso(a);
      toInput.value = iso(b);
      mark.setAttribute("x", String(Math.min(first.x, x)));
      mark.setAttribute("width", String(Math.max(2, Math.abs(x - first.x))));
      first = null;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("job");
  if (box && box.dataset.state === "Running") followJob(box);
  const svg = document.getElementById("chart");
  if (svg) pickRange(svg);
});

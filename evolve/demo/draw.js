// The input slots and the attention map, drawn alike by the live page (page.html) and the
// exported player (export.html); each page defines $, colourOf and nameOf. Inlined where a
// page has its marker line (evolve.demo.pages.read_page).

function drawSlots(frame) {
  const slots = $("slots");
  while (slots.children.length > frame.obs.length) slots.lastChild.remove();
  while (slots.children.length < frame.obs.length) {
    const d = document.createElement("div"); d.className = "slot"; slots.appendChild(d);
  }
  frame.obs.forEach((v, j) => {
    const d = slots.children[j], src = frame.sources[j];
    d.style.background = colourOf(src);
    d.title = nameOf(src);
    d.innerHTML = `${v.toFixed(2)}<small>${nameOf(src)}</small>`;
  });
}

function drawAttention(frame) {
  const c = $("attention"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (!frame.attention) { g.fillText("this model exposes no attention", 10, 20); return; }
  const m = frame.attention.length, n = frame.obs.length;
  const w = c.width / n, h = c.height / Math.max(m, 1);
  let max = 0;
  frame.attention.forEach((row) => row.forEach((a) => { max = Math.max(max, a); }));
  frame.attention.forEach((row, i) => row.forEach((a, j) => {
    g.globalAlpha = max > 0 ? a / max : 0;
    g.fillStyle = colourOf(frame.sources[j]);
    g.fillRect(j * w + 1, i * h, w - 2, h - 1);
  }));
  g.globalAlpha = 1;
}

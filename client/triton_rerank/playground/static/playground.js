// The playground's script: POST /v1/search from the browser, then the lists, their moves and nDCG@10.
// Plain DOM, no framework and no build step. Document text is always set as text, never as HTML.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const form = document.getElementById("search");
const errorBox = document.getElementById("error");
const storageKey = `triton-rerank-playground:${config.collection}:marks`;
let judgements = {}; // query text -> {document id: grade}: the service's (--qrels), then the clicked ones
let shown = null; // {query, answers: {list name: answer}} of the last search

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function headers() {
  const key = form.elements.key.value.trim();
  return { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) };
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers() });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    const said = (body && (body.detail || body.message || body.error)) || text || response.statusText;
    const retry = response.headers.get("retry-after");
    throw new Error(`${path} answered ${response.status}: ${said}${retry ? ` (retry after ${retry} s)` : ""}`);
  }
  return body;
}

// nDCG@10 as triton_rerank.metrics.ndcg_at_k has it: gain = grade, discount = 1 / log2(rank + 1).
function ndcgAt10(ids, grades) {
  const dcg = ids.slice(0, 10).reduce((sum, id, i) => sum + Math.max(grades[id] || 0, 0) / Math.log2(i + 2), 0);
  const ideal = Object.values(grades).filter((g) => g > 0).sort((a, b) => b - a).slice(0, 10);
  const idcg = ideal.reduce((sum, g, i) => sum + g / Math.log2(i + 2), 0);
  return idcg > 0 ? dcg / idcg : null;
}

function excerpt(text, span) {
  // Long documents: the window around the span that decided, with the span marked.
  const paragraph = element("p", { class: "text" });
  if (!span) {
    paragraph.append(text.length > 400 ? `${text.slice(0, 400)}…` : text);
    return paragraph;
  }
  const [start, end] = span;
  const from = Math.max(0, start - 120), to = Math.min(text.length, end + 120);
  paragraph.append(from > 0 ? "…" : "", text.slice(from, start), element("mark", {}, text.slice(start, end)),
    text.slice(end, to), to < text.length ? "…" : "");
  return paragraph;
}

function legsText(legs) {
  return Object.entries(legs || {}).map(([leg, where]) => `${leg} #${where.rank}`).join(" · ");
}

function moveBadge(hit, rank, topK) {
  const from = hit.first_stage_rank;
  if (from > topK) return element("span", { class: "move new", title: `first stage #${from}` }, `new (was #${from})`);
  if (from === rank) return element("span", { class: "move" }, "=");
  const up = from > rank;
  return element("span", { class: `move ${up ? "up" : "down"}`, title: `first stage #${from}` },
    `${up ? "↑" : "↓"}${Math.abs(from - rank)}`);
}

function row(item, rank, score, extra) {
  const grades = judgements[shown.query] || {};
  const grade = grades[item.id];
  const mark = element("button", { type: "button", class: "mark", "data-grade": grade ?? "",
    title: "relevance: click to judge (0, 1, 2)" }, grade === undefined ? "judge" : `rel ${grade}`);
  mark.addEventListener("click", () => judge(item.id));
  const head = element("div", { class: "row-head" }, element("span", { class: "rank" }, `${rank}`),
    element("span", { class: "doc-id" }, item.id), ...extra,
    element("span", { class: "score" }, score.toFixed(4)), element("span", { class: "legs" }, legsText(item.legs)), mark);
  const classes = grade === undefined ? "" : `judged-${grade}`;
  return element("li", { "data-doc-id": item.id, "data-rank": `${rank}`, class: classes }, head, excerpt(item.text, item.span));
}

function fill(name, rows, ids) {
  const list = document.querySelector(`[data-list="${name}"]`);
  list.replaceChildren(...rows);
  const value = ndcgAt10(ids, judgements[shown.query] || {});
  document.querySelector(`[data-ndcg="${name}"]`).textContent = value === null ? "" : `nDCG@10 ${value.toFixed(3)}`;
}

function render() {
  if (!shown) return;
  const { main, compare } = shown.answers;
  const topK = main.hits.length;
  fill("first-stage", main.candidates.map((c) => row(c, c.rank, c.score, [])), main.candidates.map((c) => c.id));
  const reranked = (answer) => answer.hits.map((h, i) => row(h, i + 1, h.rerank_score, [moveBadge(h, i + 1, topK)]));
  fill("reranked", reranked(main), main.hits.map((h) => h.id));
  document.querySelector('[data-model="reranked"]').textContent = main.model;
  const column = document.getElementById("compare-column");
  column.hidden = !compare;
  document.getElementById("lists").classList.toggle("comparing", Boolean(compare));
  if (compare) {
    fill("compare", reranked(compare), compare.hits.map((h) => h.id));
    document.querySelector('[data-model="compare"]').textContent = compare.model;
  }
  const times = (answer) => Object.entries(answer.timings_ms).map(([stage, ms]) => `${stage} ${ms.toFixed(1)} ms`).join(" · ");
  document.getElementById("timings").textContent = `${main.first_stage}, ${main.candidates.length} candidates: ${times(main)}`
    + (compare ? ` | ${compare.model}: ${times(compare)}` : "") + ` | request ${main.request_id}`;
  requestAnimationFrame(drawMoves);
}

function drawMoves() {
  // A line from each reranked hit's first-stage row to its reranked row (wide screens only).
  const svg = document.getElementById("moves");
  svg.replaceChildren();
  if (getComputedStyle(svg).display === "none") return;
  const box = svg.getBoundingClientRect();
  for (const target of document.querySelectorAll('[data-list="reranked"] li')) {
    const source = document.querySelector(`[data-list="first-stage"] li[data-doc-id="${CSS.escape(target.dataset.docId)}"]`);
    if (!source) continue;
    const from = source.getBoundingClientRect(), to = target.getBoundingClientRect();
    const y1 = from.top + 16 - box.top, y2 = to.top + 16 - box.top;
    const colour = y1 > y2 + 1 ? "var(--up)" : y1 < y2 - 1 ? "var(--down)" : "var(--line)";
    const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
    for (const [name, value] of Object.entries({ x1: 0, y1, x2: box.width, y2, stroke: colour })) line.setAttribute(name, value);
    svg.append(line);
  }
}

function judge(id) {
  const grades = { ...(judgements[shown.query] || {}) };
  grades[id] = ((grades[id] ?? -1) + 1) % 3;
  judgements[shown.query] = grades;
  const clicked = JSON.parse(localStorage.getItem(storageKey) || "{}");
  clicked[shown.query] = grades;
  localStorage.setItem(storageKey, JSON.stringify(clicked));
  render();
}

function body(model) {
  const value = (name) => form.elements[name].value;
  return JSON.stringify({ query: value("query"), retrieve_k: Number(value("retrieve_k")), top_k: Number(value("top_k")),
    first_stage: value("first_stage"), fusion: value("fusion"), long_documents: value("long_documents") || undefined,
    model: model || undefined });
}

async function search(event) {
  event.preventDefault();
  errorBox.hidden = true;
  const query = form.elements.query.value;
  const compareModel = form.elements.compare.value;
  try {
    const searches = [call("/v1/search", { method: "POST", body: body(form.elements.model.value) })];
    if (compareModel) searches.push(call("/v1/search", { method: "POST", body: body(compareModel) }));
    const [main, compare] = await Promise.all(searches);
    shown = { query, answers: { main, compare } };
    render();
  } catch (err) {
    showError(err.message);
  }
}

async function start() {
  for (const name of ["retrieve_k", "top_k", "first_stage", "fusion"]) form.elements[name].value = config[name];
  const option = (name) => element("option", { value: name }, name);
  form.elements.model.append(option(config.model));
  form.addEventListener("submit", search);
  window.addEventListener("resize", () => requestAnimationFrame(drawMoves));
  if (!config.search) showError("This service searches no collection: start it with --milvus-uri URI --collection NAME.");
  try {
    const [info, loaded] = await Promise.all([call("/info"), call("/playground/judgements")]);
    for (const model of info.models.map((m) => m.name).filter((m) => m !== config.model)) {
      form.elements.model.append(option(model));
      form.elements.compare.append(option(model));
    }
    judgements = { ...loaded.judgements, ...JSON.parse(localStorage.getItem(storageKey) || "{}") };
    document.getElementById("judged-queries").replaceChildren(...Object.values(loaded.queries).map((q) => element("option", { value: q })));
  } catch (err) {
    showError(err.message); // a key the service wants, or Triton not there: said, and search still tried
  }
  document.body.dataset.ready = "true";
}

start();

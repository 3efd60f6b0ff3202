// synthloop review: keyboard-first. Every decision is saved by the server before it shows as saved.
"use strict";

const TOKEN = document.querySelector('meta[name="review-token"]').content;
const WINDOW = 150; // queue entries drawn around the current one
const state = { queue: [], decided: {}, cur: 0, marked: new Set(), undo: [], row: null, mode: "browse", reasons: [], pickFor: null };
const $ = (id) => document.getElementById(id);

function reviewer() { return $("reviewer").value.trim(); }

async function api(path, body) {
  const init = { headers: { "X-Review-Token": TOKEN } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function say(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = kind || "";
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function mark(rowId) {
  const list = state.decided[rowId] || [];
  if (!list.length) return "";
  const actions = new Set(list.map((d) => d.action));
  if (actions.size > 1) return "conflict";
  return list[0].action;
}

function drawQueue() {
  const nav = $("queue");
  nav.textContent = "";
  const start = Math.max(0, state.cur - 30);
  for (let i = start; i < Math.min(state.queue.length, start + WINDOW); i++) {
    const item = state.queue[i];
    const m = mark(item.id);
    const classes = [i === state.cur ? "current" : "", state.marked.has(item.id) ? "marked" : "", m].join(" ");
    const label = `${i + 1}. ${item.skill}${item.audit ? " · audit" : ""}${item.why ? " · " + item.why : ""}`;
    const div = el("div", { class: classes, "data-row": item.id, "data-mark": m || "none" }, label);
    div.addEventListener("click", () => go(i));
    nav.append(div);
  }
  const done = state.queue.filter((item) => (state.decided[item.id] || []).length).length;
  $("progress").textContent = `${done} of ${state.queue.length} decided · row ${state.cur + 1}`;
}

function verdictTable(verdicts) {
  const table = el("table", {}, el("tr", {}, el("th", {}, "stage"), el("th", {}, "kept"), el("th", {}, "reason"), el("th", {}, "score"), el("th", {}, "detail")));
  for (const v of verdicts) {
    table.append(el("tr", {}, el("td", {}, v.stage), el("td", {}, v.keep ? "yes" : "no"), el("td", {}, v.reason || ""), el("td", {}, v.score ?? ""), el("td", {}, v.detail || "")));
  }
  return table;
}

function drawRow(row) {
  const box = $("row");
  box.textContent = "";
  const item = state.queue[state.cur];
  box.append(el("p", {},
    el("span", { class: "badge" }, row.skill),
    row.audit ? el("span", { class: "badge audit" }, "audit slice") : null,
    row.why ? el("span", { class: "badge why" }, row.why) : null,
    el("span", { class: row.kept_by_curation ? "badge kept" : "badge" }, row.kept_by_curation ? "kept by curation" : "rejected by curation"),
    el("span", { class: "badge" }, `round ${row.round}`),
    el("code", { id: "row-id" }, row.id)));
  if (row.decisions.length) {
    const conflict = new Set(row.decisions.map((d) => d.action)).size > 1;
    const list = el("ul", { id: "decisions", class: conflict ? "conflict-box" : "" });
    if (conflict) list.append(el("li", {}, el("strong", {}, "Reviewers disagree: the row is kept only if all accept.")));
    for (const d of row.decisions) list.append(el("li", {}, `${d.reviewer}: ${d.action}${d.reason ? " (" + d.reason + ")" : ""}${Object.keys(d.edit || {}).length ? " with an edit" : ""} · ${d.time}`));
    box.append(list);
  }
  box.append(el("h3", {}, "Question"), el("pre", { id: "question" }, row.question));
  box.append(el("h3", {}, "Reasoning"), el("pre", { id: "reasoning" }, row.reasoning || "(none)"));
  box.append(el("h3", {}, "Answer"), el("pre", { id: "answer" }, row.answer ?? "(none: " + (row.error || "unparsed") + ")"));
  if (row.reference_answer !== null) box.append(el("p", {}, "Reference answer: ", el("code", {}, row.reference_answer)));
  box.append(el("h3", {}, "Curation verdicts"), verdictTable(row.verdicts || []));
  const lineage = el("details", { id: "lineage" }, el("summary", {}, "Lineage: the teacher call and parent rows"));
  lineage.append(el("p", {}, `teacher ${row.teacher_backend}:${row.teacher_model} · request ${row.request_id} · sample ${row.sample_index} · attempts ${row.attempts ?? "?"} · tokens ${row.prompt_tokens ?? "-"}+${row.completion_tokens ?? "-"} · parse ${row.parse_status ?? "-"} · task ${row.task} v${row.template_version} · recipe ${row.recipe_hash}`));
  for (const m of row.messages || []) lineage.append(el("pre", {}, `[${m.role}] ${m.content}`));
  lineage.append(el("h4", {}, "Raw output"), el("pre", {}, row.raw_output || ""));
  for (const p of row.parents || []) lineage.append(el("p", {}, `parent ${p.id} (${p.kind}): ${p.question}`));
  box.append(lineage);
  void item;
}

async function go(i) {
  if (!state.queue.length) { $("row").textContent = "The queue is empty: nothing in this round needs a human."; return; }
  state.cur = Math.max(0, Math.min(state.queue.length - 1, i));
  drawQueue();
  const id = state.queue[state.cur].id;
  try {
    const row = await api(`/api/row/${encodeURIComponent(id)}`);
    if (state.queue[state.cur].id !== id) return; // moved on meanwhile
    state.row = row;
    drawRow(row);
  } catch (err) { say(err.message, "error"); }
}

function nextUndecided() {
  for (let i = state.cur + 1; i < state.queue.length; i++) if (!(state.decided[state.queue[i].id] || []).length) return go(i);
  say("no undecided row after this one", "ok");
}

function remember(decisions) {
  for (const d of decisions) {
    const list = (state.decided[d.row_id] || []).filter((x) => x.reviewer !== d.reviewer);
    list.push(d);
    state.decided[d.row_id] = list;
  }
}

async function decide(rowIds, action, reason, edit) {
  if (!reviewer()) { say("type your name in the reviewer box first", "error"); $("reviewer").focus(); return false; }
  const body = { reviewer: reviewer(), action, row_ids: rowIds };
  if (reason) body.reason = reason;
  if (edit) body.edit = edit;
  try {
    const result = await api("/api/decide", body);
    remember(result.decisions);
    state.undo.push(result.decisions.map((d) => d.id));
    say(`saved: ${action} ${rowIds.length > 1 ? rowIds.length + " rows" : ""}`, "ok");
    return true;
  } catch (err) { say(err.message, "error"); return false; }
}

async function undo() {
  const ids = state.undo.pop();
  if (!ids) { say("nothing of yours to undo in this session", "error"); return; }
  let rowId = null;
  try {
    const result = await api("/api/undo", { reviewer: reviewer(), decision_ids: ids });
    rowId = result.undone.row_id;
  } catch (err) { state.undo.push(ids); say(err.message, "error"); return; }
  await refresh();
  const i = state.queue.findIndex((item) => item.id === rowId);
  say(`undone (${ids.length} decision${ids.length > 1 ? "s" : ""})`, "ok");
  await go(i >= 0 ? i : state.cur);
}

function openPicker(rowIds) {
  state.mode = "picker";
  state.pickFor = rowIds;
  $("picker-title").textContent = `Reject ${rowIds.length > 1 ? rowIds.length + " marked rows" : "this row"}: why? Press a number, or type and press Enter. Esc cancels.`;
  $("picker").hidden = false;
  $("reason-text").value = "";
}

function closeOverlays() {
  state.mode = "browse";
  $("picker").hidden = true;
  $("editor").hidden = true;
  document.activeElement.blur();
}

async function pickReason(reason) {
  const rowIds = state.pickFor;
  closeOverlays();
  if (await decide(rowIds, "reject", reason)) {
    if (rowIds.length > 1) { state.marked.clear(); drawQueue(); await go(state.cur); } else nextUndecided();
  }
}

function openEditor() {
  if (!state.row) return;
  state.mode = "edit";
  $("edit-reasoning").value = state.row.reasoning || "";
  $("edit-answer").value = state.row.answer || "";
  $("editor").hidden = false;
  $("edit-answer").focus();
}

async function saveEdit() {
  const answer = $("edit-answer").value, reasoning = $("edit-reasoning").value;
  if (!answer.trim()) { say("the answer cannot be empty; Esc, then r to reject the row instead", "error"); return; }
  const same = (a, b) => (a || "").split(/\s+/).join(" ").trim() === (b || "").split(/\s+/).join(" ").trim();
  const edit = {}; // only what changed: an unchanged row is a plain accept
  if (!same(answer, state.row.answer)) edit.answer = answer;
  if (!same(reasoning, state.row.reasoning)) edit.reasoning = reasoning;
  if (await decide([state.row.id], "accept", null, Object.keys(edit).length ? edit : null)) { closeOverlays(); nextUndecided(); }
}

async function figures() {
  const box = $("figures");
  box.hidden = !box.hidden;
  if (box.hidden) return;
  try {
    const f = await api("/api/figures");
    box.textContent = "";
    box.append(el("h3", {}, "Agreement"), el("p", {}, `${f.decided} rows decided; audit slice ${f.audit.decided} of ${f.audit.size}`));
    const k = f.kept_error;
    box.append(el("p", { id: "kept-error" }, k.error_rate === null ? `kept-set error: ${k.why}` :
      `kept-set error ${(100 * k.error_rate).toFixed(1)}% (${(100 * k.low).toFixed(1)}–${(100 * k.high).toFixed(1)}%, ${Math.round(100 * k.confidence)}% CI, ${k.audited} audited)`));
    const table = el("table", {}, el("tr", {}, el("th", {}, "stage"), el("th", {}, "rows"), el("th", {}, "precision"), el("th", {}, "recall"), el("th", {}, "kappa")));
    const fmt = (x) => (x === null || x === undefined ? "–" : x.toFixed(2));
    for (const [stage, s] of Object.entries(f.stages)) table.append(el("tr", {}, el("td", {}, stage), el("td", {}, s.rows), el("td", {}, fmt(s.precision)), el("td", {}, fmt(s.recall)), el("td", {}, fmt(s.kappa))));
    box.append(table);
    const r = f.reviewers;
    box.append(el("p", {}, `reviewers: alpha ${fmt(r.alpha)} over ${r.rows_with_several_reviewers} rows decided by several (${r.rows_disagreed} disagree)`));
  } catch (err) { say(err.message, "error"); }
}

async function refresh() {
  const s = await api("/api/state");
  state.queue = s.queue;
  state.decided = s.decided;
  state.reasons = s.reasons;
  $("where").textContent = `round ${s.round} of ${s.run} · ${s.rows} rows`;
  if (!$("reviewer").value) $("reviewer").value = localStorage.getItem("synthloop-reviewer") || s.reviewer || "";
  const list = $("reasons");
  list.textContent = "";
  s.reasons.forEach((reason) => list.append(el("li", {}, reason)));
}

document.addEventListener("keydown", async (event) => {
  if (state.mode === "picker") {
    if (event.key === "Escape") { closeOverlays(); return; }
    if (event.key === "Enter" && $("reason-text").value.trim()) { event.preventDefault(); await pickReason($("reason-text").value.trim()); return; }
    const n = Number(event.key);
    if (document.activeElement !== $("reason-text") && n >= 1 && n <= state.reasons.length) { event.preventDefault(); await pickReason(state.reasons[n - 1]); return; }
    if (document.activeElement !== $("reason-text") && event.key.length === 1) $("reason-text").focus();
    return;
  }
  if (state.mode === "edit") {
    if (event.key === "Escape") closeOverlays();
    else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); await saveEdit(); }
    return;
  }
  if (event.target instanceof HTMLInputElement) {
    if (event.key === "Enter" || event.key === "Escape") event.target.blur();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const row = state.row;
  switch (event.key) {
    case "j": case "ArrowDown": event.preventDefault(); await go(state.cur + 1); break;
    case "k": case "ArrowUp": event.preventDefault(); await go(state.cur - 1); break;
    case "n": nextUndecided(); break;
    case "a": if (row && await decide([row.id], "accept")) nextUndecided(); break;
    case "r": if (row) { event.preventDefault(); openPicker([row.id]); } break;
    case "e": if (row) { event.preventDefault(); openEditor(); } break;
    case "u": await undo(); break;
    case "x": if (row) { state.marked.has(row.id) ? state.marked.delete(row.id) : state.marked.add(row.id); drawQueue(); } break;
    case "A": if (state.marked.size && await decide([...state.marked], "accept")) { state.marked.clear(); drawQueue(); await go(state.cur); } break;
    case "R": if (state.marked.size) { event.preventDefault(); openPicker([...state.marked]); } break;
    case "f": await figures(); break;
    default: return;
  }
});

$("reviewer").addEventListener("change", () => localStorage.setItem("synthloop-reviewer", reviewer()));

(async () => {
  try {
    await refresh();
    await go(0);
    document.body.dataset.ready = "1";
  } catch (err) { say(err.message, "error"); }
})();

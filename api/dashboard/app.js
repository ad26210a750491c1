// The cutloop dashboard: plain ES modules and SVG, served by the API itself (no CDN, no
// build step). Text from the store is always set as textContent, never parsed as HTML.

const API = "/api/v1";
const state = { campaign: null, rounds: [], stream: null, after: null };
const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(API + path, options);
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const detail = body?.detail;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail ?? response.status));
  }
  return body;
}

const fixed = (value, digits = 1) => (value === null || value === undefined ? "–" : value.toFixed(digits));

// ---- charts ----------------------------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attributes, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

// series: [{name, color, points: [{x, y, err}]}]; error bars where err is given
function drawChart(target, series, { floor = null, ceiling = null } = {}) {
  target.replaceChildren();
  const box = { left: 40, right: 410, top: 12, bottom: 190 };
  const points = series.flatMap((s) => s.points.filter((p) => p.y !== null));
  if (points.length === 0) {
    target.append(svg("text", { x: 150, y: 110, class: "empty" }, "no data yet"));
    return;
  }
  const xs = points.map((p) => p.x);
  const lows = points.map((p) => p.y - (p.err ?? 0));
  const highs = points.map((p) => p.y + (p.err ?? 0));
  let low = floor ?? Math.min(...lows), high = ceiling ?? Math.max(...highs);
  if (high - low < 1e-9) { low -= 1; high += 1; }
  const xMin = Math.min(...xs), xMax = Math.max(...xs, xMin + 1);
  const x = (v) => box.left + ((v - xMin) / (xMax - xMin)) * (box.right - box.left);
  const y = (v) => box.bottom - ((v - low) / (high - low)) * (box.bottom - box.top);
  for (let i = 0; i <= 4; i++) {
    const v = low + ((high - low) * i) / 4;
    target.append(svg("line", { x1: box.left, x2: box.right, y1: y(v), y2: y(v), class: "grid" }));
    target.append(svg("text", { x: 2, y: y(v) + 3 }, v.toFixed(high - low < 2 ? 2 : 1)));
  }
  target.append(svg("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom, class: "axis" }));
  for (let round = xMin; round <= xMax; round++) {
    target.append(svg("text", { x: x(round) - 3, y: box.bottom + 14 }, String(round)));
  }
  target.append(svg("text", { x: box.right - 30, y: box.bottom + 26 }, "round"));
  series.forEach((s, i) => {
    const shown = s.points.filter((p) => p.y !== null);
    const path = shown.map((p) => `${x(p.x)},${y(p.y)}`).join(" ");
    target.append(svg("polyline", { points: path, class: "series", stroke: s.color }));
    for (const p of shown) {
      const range = p.range ?? (p.err ? [p.y - p.err, p.y + p.err] : null);
      if (range) {
        const [top, bottom] = [y(range[1]), y(range[0])];
        const bar = svg("g", { class: "errorbar", stroke: s.color });
        bar.append(svg("line", { x1: x(p.x), x2: x(p.x), y1: top, y2: bottom }));
        bar.append(svg("line", { x1: x(p.x) - 4, x2: x(p.x) + 4, y1: top, y2: top }));
        bar.append(svg("line", { x1: x(p.x) - 4, x2: x(p.x) + 4, y1: bottom, y2: bottom }));
        target.append(bar);
      }
      const dot = svg("circle", { cx: x(p.x), cy: y(p.y), r: 3.5, fill: s.color, class: "point", "data-series": s.name });
      const spread = p.range ? ` (${fixed(p.range[0], 3)}–${fixed(p.range[1], 3)})` : p.err ? ` ± ${fixed(p.err, 3)}` : "";
      dot.append(svg("title", {}, `${s.name}, round ${p.x}: ${fixed(p.y, 3)}${spread}`));
      target.append(dot);
    }
    target.append(svg("text", { x: box.left + 8 + i * 120, y: box.top + 2, fill: s.color }, s.name));
  });
}

function drawCharts() {
  const rounds = state.rounds;
  const series = (name, color, value, err = () => null, range = () => null) => ({
    name, color, points: rounds.map((r) => ({ x: r.index, y: value(r) ?? null, err: err(r), range: range(r) })),
  });
  drawChart($("chart-pstrict"), [
    series("P-strict", "#1e8449", (r) => r.prompt_strict, () => null, (r) => r.prompt_strict_ci95),
  ]);
  drawChart($("chart-winrate"), [
    series("win rate", "#2f6fde", (r) => r.win_rate, (r) => r.standard_error),
    series("LC win rate", "#d9822b", (r) => r.lc_win_rate, (r) => r.lc_standard_error),
  ]);
  drawChart($("chart-loss"), [series("loss", "#6a4fb6", (r) => r.final_loss)]);
  drawChart($("chart-flagged"), [
    series("flagged", "#c0392b", (r) => (r.flagged_fraction === null ? null : 100 * r.flagged_fraction)),
  ], { floor: 0 });
}

// ---- campaigns and rounds ------------------------------------------------------------
async function loadCampaigns() {
  const campaigns = await api("/campaigns");
  const list = $("campaigns");
  list.replaceChildren(...campaigns.map((c) => {
    const link = element("a", { href: `#/c/${encodeURIComponent(c.name)}` });
    link.append(element("span", {}, c.name), element("span", { class: `status ${c.status}` }, c.status));
    if (c.name === state.campaign?.name) link.classList.add("selected");
    const item = element("li");
    item.append(link);
    return item;
  }));
  $("campaigns-empty").hidden = campaigns.length > 0;
  return campaigns;
}

function showCampaign(campaign) {
  state.campaign = campaign;
  $("campaign").hidden = false;
  $("campaign-name").textContent = campaign.name;
  const status = $("campaign-status");
  status.textContent = campaign.queue_position ? `queued (#${campaign.queue_position})` : campaign.status;
  status.className = `status ${campaign.status}`;
  $("campaign-error").hidden = !campaign.error;
  $("campaign-error").textContent = campaign.error ?? "";
  showWaiting(campaign.waiting, campaign.current_round);
}

function showWaiting(waiting, round) {  // people judge the round: a way in for annotators
  $("campaign-waiting").hidden = !waiting;
  $("campaign-waiting").querySelector("span").textContent = waiting ?? "";
  if (waiting) $("judge-link").href = `#/judge/${encodeURIComponent(state.campaign.name)}/${round}`;
}

function showRounds() {
  const body = $("rounds").querySelector("tbody");
  body.replaceChildren(...state.rounds.map((r) => {
    const row = element("tr", { "data-round": r.index });
    const cells = [r.index, r.status, r.stage, r.generations, `${r.negative} / ${r.positive}`,
      r.failed_calls, fixed(r.final_loss, 3),
      r.flagged_fraction === null ? "–" : `${(100 * r.flagged_fraction).toFixed(1)}%`,
      r.win_rate === null ? "–" : `${fixed(r.win_rate)} ± ${fixed(r.standard_error)}`,
      fixed(r.lc_win_rate), fixed(r.prompt_strict)];
    row.append(...cells.map((value) => element("td", {}, String(value))));
    if (r.error) row.title = r.error;
    return row;
  }));
  const select = $("f-round");
  const chosen = select.value;
  const trained = state.rounds.filter((r) => r.generations > 0);
  select.replaceChildren(...trained.map((r) => element("option", { value: r.index }, `round ${r.index}`)));
  if (trained.some((r) => String(r.index) === chosen)) select.value = chosen;
  drawCharts();
}

function upsertRound(round) {
  const at = state.rounds.findIndex((r) => r.index === round.index);
  if (at >= 0) state.rounds[at] = round;
  else state.rounds.push(round);
  state.rounds.sort((a, b) => a.index - b.index);
}

async function openCampaign(name) {
  state.stream?.close();
  const [campaign, rounds] = await Promise.all([
    api(`/campaigns/${encodeURIComponent(name)}`), api(`/campaigns/${encodeURIComponent(name)}/rounds`),
  ]);
  $("judging").hidden = true;
  showCampaign(campaign);
  state.rounds = rounds;
  showRounds();
  $("answer").hidden = true;
  await loadJudgments(true);
  follow(name);
  await loadCampaigns();
}

// ---- live updates ----------------------------------------------------------------
function follow(name) {
  const stream = new EventSource(`${API}/campaigns/${encodeURIComponent(name)}/events`);
  state.stream = stream;
  const mine = () => state.campaign?.name === name;
  stream.addEventListener("campaign", (event) => { if (mine()) showCampaign(JSON.parse(event.data)); });
  stream.addEventListener("round", (event) => {
    if (!mine()) return;
    upsertRound(JSON.parse(event.data));
    showRounds();
  });
  stream.addEventListener("progress", (event) => {
    if (!mine()) return;
    const p = JSON.parse(event.data);
    const parts = p.round === null ? [] : [`round ${p.round}`, p.stage];
    if (p.total) parts.push(`${p.done}/${p.total}`);
    if (p.loss !== null) parts.push(`loss ${p.loss.toFixed(4)}`);
    $("progress").textContent = parts.join(" · ");
    showWaiting(p.waiting, p.round);
  });
  stream.addEventListener("end", (event) => {
    stream.close();
    if (mine()) { showCampaign(JSON.parse(event.data)); $("progress").textContent = ""; loadCampaigns(); }
  });
}

// ---- judgments and answers -----------------------------------------------------------
async function loadJudgments(reset) {
  const round = $("f-round").value;
  const body = $("judgments").querySelector("tbody");
  if (reset) { body.replaceChildren(); state.after = null; }
  if (round === "") { $("more").hidden = true; return; }
  const query = new URLSearchParams({ limit: "20" });
  for (const [key, id] of [["polarity", "f-polarity"], ["status", "f-status"], ["q", "f-text"]]) {
    if ($(id).value) query.set(key, $(id).value);
  }
  if (state.after !== null) query.set("after", state.after);
  const page = await api(`/campaigns/${encodeURIComponent(state.campaign.name)}/rounds/${round}/judgments?${query}`);
  for (const j of page.data) {
    const row = element("tr", { "data-generation": j.generation_id });
    row.append(element("td", {}, String(j.generation_id)),
      element("td", { class: j.polarity ?? "" }, j.polarity ?? j.status),
      element("td", {}, (j.text ?? j.error ?? "").slice(0, 140)));
    row.addEventListener("click", () => {
      body.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
      row.classList.add("selected");
      showAnswer(j.generation_id);
    });
    body.append(row);
  }
  state.after = page.last_id ?? state.after;
  $("more").hidden = !page.has_more;
}

async function showAnswer(generationId) {
  const answer = await api(`/campaigns/${encodeURIComponent(state.campaign.name)}/answers/${generationId}`);
  $("answer").hidden = false;
  $("answer-instruction").textContent = answer.instruction;
  const text = $("answer-text");
  const report = answer.flagged_tokens.at(-1);
  if (report?.segments) {
    text.replaceChildren(...report.segments.map((s) => s.flagged
      ? element("mark", { class: "flagged", title: `p_al / p_mis = ${s.ratio.toFixed(3)}` }, s.text)
      : document.createTextNode(s.text)));
    $("answer-flag-note").textContent = `${report.flagged} tokens flagged in round ${report.round}`;
  } else {
    text.textContent = answer.text;
    $("answer-flag-note").textContent = report ? "flagged tokens: the policy's tokenizer is not on this server" : "";
  }
  $("answer-judgments").replaceChildren(...answer.judgments.map((j) => {
    const box = element("div", { class: `judgment ${j.polarity ?? "failed"}` });
    box.append(element("div", { class: "muted" }, `${j.judge_name} · ${j.polarity ?? j.status}`),
      element("p", {}, j.text ?? j.error ?? ""));
    if (j.spans?.length) {  // the answer's text the judgment faults, as the judge located it
      const faults = element("div", { class: "spans" });
      faults.append(element("span", { class: "muted" }, "faults in the answer: "),
        ...j.spans.map(([start, end]) => element("mark", { class: "judged", title: `characters ${start}–${end}` },
          answer.text.slice(start, end))));
      box.append(faults);
    }
    return box;
  }));
}

// ---- actions ---------------------------------------------------------------------------
async function act(action) {
  const name = encodeURIComponent(state.campaign.name);
  const headers = { "Content-Type": "application/json" };
  const token = $("token").value;
  if (token) headers.Authorization = `Bearer ${token}`;
  const [route, body] = action === "extend" ? ["launch", { extra_rounds: 1 }] : [action, null];
  try {
    showCampaign(await api(`/campaigns/${name}/${route}`, {
      method: "POST", headers, body: body ? JSON.stringify(body) : undefined,
    }));
    follow(state.campaign.name);
  } catch (error) {
    $("campaign-error").hidden = false;
    $("campaign-error").textContent = `${action}: ${error.message}`;
  }
}

// ---- judging: annotators write or review judgments (judge kind human or review) -------
const judging = { name: null, round: null, task: null, spans: [], shown: 0 };
const taskPath = () => `/campaigns/${encodeURIComponent(judging.name)}/rounds/${judging.round}/tasks`;

function annotatorHeaders() {
  const headers = { "Content-Type": "application/json" };
  const token = $("annotator-token").value;
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

function judgingMessage(text) {
  $("judging-message").hidden = !text;
  $("judging-message").textContent = text ?? "";
}

async function openJudging(name, round) {
  state.stream?.close();
  Object.assign(judging, { name, round, task: null });
  $("campaign").hidden = true;
  $("judging").hidden = false;
  $("judging-title").textContent = `${name}, round ${round}`;
  await loadCampaigns();
  await signIn();
}

async function signIn() {
  $("task").hidden = true;
  $("judging-who").textContent = "";
  if (!$("annotator-token").value) { judgingMessage("Enter your annotator token to judge."); return; }
  judgingMessage(null);
  try {
    const me = await api("/annotator", { headers: annotatorHeaders() });
    $("judging-who").textContent = `judging as ${me.name}`;
    await nextTask();
  } catch (error) { judgingMessage(error.message); }
}

async function showJudgingProgress() {
  const round = await api(`/campaigns/${encodeURIComponent(judging.name)}/rounds/${judging.round}`);
  const closed = round.tasks_expired ? ` · ${round.tasks_expired} closed unjudged` : "";
  $("judging-progress").textContent = `${round.tasks_done} of ${round.tasks} done${closed}`;
}

async function nextTask() {
  try {
    const task = await api(`${taskPath()}/claim`, { method: "POST", headers: annotatorHeaders() });
    await showJudgingProgress();
    judging.task = task;
    if (task) showTask(task);
    else {
      $("task").hidden = true;
      judgingMessage("No answer is waiting for you: every task is judged or being judged.");
    }
  } catch (error) { $("task").hidden = true; judgingMessage(error.message); }
}

function showTask(task) {
  judging.spans = mergeSpans(task.draft?.spans ?? []);
  judgingMessage(null);
  $("task").hidden = false;
  $("task-error").hidden = true;
  $("task").dataset.task = task.id;
  $("task").dataset.shown = ++judging.shown;  // tells a task shown again from a new one
  $("task-instruction").textContent = task.instruction;
  $("task-text").value = task.draft?.text ?? "";
  setPolarity(task.draft?.polarity ?? "negative");
  $("task-reject").hidden = !task.draft;
  $("task-draft-note").textContent = task.draft
    ? `drafted by ${task.draft.judge_name}: submit it unchanged to accept, or edit it` : "";
  drawAnswer();
  $("task-text").focus();
}

function mergeSpans(spans) {
  const merged = [];
  for (const [start, end] of [...spans].sort((a, b) => a[0] - b[0])) {
    const last = merged.at(-1);
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  return merged;
}

function drawAnswer() {  // the answer, the marked spans highlighted
  const text = judging.task.answer;
  const parts = [];
  let at = 0;
  for (const [start, end] of judging.spans) {
    parts.push(document.createTextNode(text.slice(at, start)));
    parts.push(element("mark", { class: "judged" }, text.slice(start, end)));
    at = end;
  }
  parts.push(document.createTextNode(text.slice(at)));
  $("task-answer").replaceChildren(...parts);
  $("task-spans").replaceChildren(...judging.spans.map(([start, end], i) => {
    const item = element("span", { class: "span" }, `“${text.slice(start, end)}”`);
    const remove = element("button", { type: "button", title: "unmark" }, "×");
    remove.addEventListener("click", () => { judging.spans.splice(i, 1); drawAnswer(); });
    item.append(remove);
    return item;
  }));
}

function markSelection() {  // the selected characters of the answer become a span
  const selection = window.getSelection();
  const answer = $("task-answer");
  if (!selection.rangeCount || selection.isCollapsed) return;
  const range = selection.getRangeAt(0);
  if (!answer.contains(range.startContainer) || !answer.contains(range.endContainer)) return;
  const offset = (node, at) => {
    const before = document.createRange();
    before.selectNodeContents(answer);
    before.setEnd(node, at);
    return before.toString().length;
  };
  const [start, end] = [offset(range.startContainer, range.startOffset), offset(range.endContainer, range.endOffset)];
  selection.removeAllRanges();
  if (end > start) { judging.spans = mergeSpans([...judging.spans, [start, end]]); drawAnswer(); }
}

const polarity = () => document.querySelector('input[name="task-polarity"]:checked').value;
function setPolarity(value) { document.querySelector(`input[name="task-polarity"][value="${value}"]`).checked = true; }

async function taskAction(action, body = null) {
  if (!judging.task) return;
  try {
    await api(`${taskPath()}/${judging.task.id}/${action}`, {
      method: "POST", headers: annotatorHeaders(), body: body ? JSON.stringify(body) : undefined,
    });
    await nextTask();
  } catch (error) {
    $("task-error").hidden = false;
    $("task-error").textContent = error.message;
  }
}

const submitTask = () => taskAction("judgment", { text: $("task-text").value, polarity: polarity(), spans: judging.spans });

function judgingKeys(event) {
  if ($("judging").hidden || !judging.task) return;
  const keys = { KeyS: () => taskAction("skip"), KeyR: () => judging.task.draft && taskAction("reject"),
    KeyM: markSelection, KeyN: () => setPolarity("negative"), KeyP: () => setPolarity("positive") };
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter") submitTask();
  else if (event.altKey && keys[event.code]) keys[event.code]();
  else return;
  event.preventDefault();
}

function route() {
  const judge = location.hash.match(/^#\/judge\/(.+)\/(\d+)$/);
  if (judge) { openJudging(decodeURIComponent(judge[1]), Number(judge[2])); return; }
  const match = location.hash.match(/^#\/c\/(.+)$/);
  if (match) openCampaign(decodeURIComponent(match[1]));
}

document.addEventListener("DOMContentLoaded", async () => {
  $("token").value = sessionStorage.getItem("cutloop-token") ?? "";
  $("token").addEventListener("change", () => sessionStorage.setItem("cutloop-token", $("token").value));
  document.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => act(b.dataset.action)));
  for (const id of ["f-round", "f-polarity", "f-status"]) $(id).addEventListener("change", () => loadJudgments(true));
  $("f-text").addEventListener("change", () => loadJudgments(true));
  $("more").addEventListener("click", () => loadJudgments(false));
  $("annotator-token").value = sessionStorage.getItem("cutloop-annotator-token") ?? "";
  $("annotator-token").addEventListener("change", () => {
    sessionStorage.setItem("cutloop-annotator-token", $("annotator-token").value);
    signIn();
  });
  $("task-form").addEventListener("submit", (event) => { event.preventDefault(); submitTask(); });
  $("task-skip").addEventListener("click", () => taskAction("skip"));
  $("task-reject").addEventListener("click", () => taskAction("reject"));
  $("task-mark").addEventListener("click", markSelection);
  document.addEventListener("keydown", judgingKeys);
  setInterval(() => {  // a task given up or whose lease ran out comes back
    if (!$("judging").hidden && !judging.task && $("annotator-token").value) nextTask();
  }, 5000);
  window.addEventListener("hashchange", route);
  const campaigns = await loadCampaigns();
  if (!location.hash && campaigns.length) location.hash = `#/c/${encodeURIComponent(campaigns.at(-1).name)}`;
  else route();
});

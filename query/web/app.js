// The tracker's dashboard: tiles of counts by status, a 30-day chart, the
// records table with every list filter, sorting and paging, live updates
// from the change feed, and a drawer with a record's events. It only calls
// the public API with the token the user typed (kept in session storage).
// The vocabulary (statuses) comes from the served OpenAPI document.
'use strict';

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = 'tracker.token';
const DAY = 86400000;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  statuses: [],
  project: null,
  filters: {},
  sort: { key: 'created_at', dir: 'desc' },
  limit: 100,
  pages: [{}], // how each visited page was loaded: {marker} or {offset}
  page: 0,
  nextMarker: null,
  rows: new Map(), // id -> <tr>
  lastEventId: null,
  feed: null, // AbortController of the open change feed
  drawer: null, // {id, asOf} of the record the drawer shows
  retry: 1000,
};

class ApiError extends Error {
  constructor(status, code, msg) {
    super(`${code}: ${msg}`);
    this.status = status;
    this.code = code;
  }
}

async function api(path, params = {}) {
  const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  const url = qs.toString() ? `${path}?${qs}` : path;
  const resp = await fetch(url, { headers: { 'X-Auth-Token': state.token || '' } });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    throw new ApiError(resp.status, body?.error_code ?? `HTTP ${resp.status}`, body?.error_msg ?? resp.statusText);
  }
  return body;
}

function showError(e) {
  if (e?.name === 'AbortError') return;
  const box = $('#error');
  box.textContent = e instanceof ApiError ? e.message : `Error: ${e?.message ?? e}`;
  box.hidden = false;
  if (e instanceof ApiError && e.status === 401) signIn();
}

function clearError() {
  $('#error').hidden = true;
}

const projectPath = () => `/v1/${encodeURIComponent(state.project)}`;

// ---- sign-in and projects ----

function signIn() {
  closeFeed();
  $('#board').hidden = true;
  $('#signout').hidden = true;
  $('#signin').hidden = false;
  $('#token').focus();
}

async function start() {
  $('#signin').hidden = true;
  const { projects } = await api('/v1/projects');
  clearError();
  $('#signout').hidden = false;
  const sel = $('#project');
  sel.replaceChildren(...projects.map((p) => new Option(inert(p), p)));
  const wanted = new URLSearchParams(location.hash.slice(1)).get('project');
  state.project = projects.includes(wanted) ? wanted : projects[0] ?? null;
  if (!state.project) {
    showError(new Error('no project with records is readable with this token'));
    return;
  }
  sel.value = state.project;
  $('#board').hidden = false;
  await openProject();
}

async function openProject() {
  location.hash = `project=${encodeURIComponent(state.project)}`;
  state.lastEventId = null;
  // The feed first, then what it updates: no change falls in between.
  await openFeed();
  resetPaging();
  await Promise.all([loadTiles(), loadChart(), loadList(), loadRegions()]);
}

// ---- tiles ----

// At most one refresh per second however busy the feed is.
let tilesTimer = null;
const refreshTilesSoon = () => {
  tilesTimer ??= setTimeout(() => {
    tilesTimer = null;
    loadTiles().catch(showError);
  }, 1000);
};

// A status as people read it (`waiting replicate`), the same on the tiles,
// the legend, the table and the filter; the API's value stays as it is.
const label = (s) => s.replaceAll('_', ' ');

async function loadTiles() {
  const [byStatus, stuck] = await Promise.all([
    api(`${projectPath()}/replication_summaries`, { group_by: 'status' }),
    api(`${projectPath()}/replication_summaries`, { stuck: 'true' }),
  ]);
  const counts = Object.fromEntries(byStatus.summaries.map((s) => [s.status, s.count]));
  const tiles = [['all', 'all records', byStatus.total]]
    .concat(state.statuses.map((s) => [s, label(s), counts[s] ?? 0]))
    .concat([['stuck', 'stuck', stuck.total]]);
  $('#tiles').replaceChildren(...tiles.map(([key, label, n]) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `tile s-${key}`;
    b.dataset.status = key;
    b.innerHTML = '<span class="n"></span><span class="k"></span>';
    b.querySelector('.n').textContent = n.toLocaleString('en');
    b.querySelector('.k').textContent = label;
    b.addEventListener('click', () => pickTile(key));
    return b;
  }));
  markActiveTile();
}

function markActiveTile() {
  const f = state.filters;
  const active = f.stuck === 'true' ? 'stuck' : f.status ?? (f.stuck ? null : 'all');
  for (const t of document.querySelectorAll('.tile')) t.classList.toggle('active', t.dataset.status === active);
}

function pickTile(key) {
  delete state.filters.status;
  delete state.filters.stuck;
  if (key === 'stuck') state.filters.stuck = 'true';
  else if (key !== 'all') state.filters.status = key;
  writeFilterForm();
  resetPaging();
  markActiveTile();
  loadList().catch(showError);
}

// ---- chart: records created per day by status, drawn as SVG ----

let chartTimer = null;
const refreshChartSoon = () => {
  chartTimer ??= setTimeout(() => {
    chartTimer = null;
    loadChart().catch(showError);
  }, 5000);
};

async function loadChart() {
  const today = Math.floor(Date.now() / DAY) * DAY;
  const from = today - 29 * DAY;
  const after = new Date(from).toISOString().slice(0, 19);
  const { summaries } = await api(`${projectPath()}/replication_summaries`, { group_by: 'status', interval: 'day', created_after: after });
  const days = Array.from({ length: 30 }, () => ({}));
  for (const s of summaries) {
    const i = Math.round((Date.parse(`${s.start}Z`) - from) / DAY);
    if (i >= 0 && i < 30) days[i][s.status] = s.count;
  }
  drawChart(days, from);
}

function drawChart(days, from) {
  const W = Math.max(300, $('#chart').clientWidth || 600), H = 160, top = 8, bottom = 20, left = 32;
  const barW = (W - left) / days.length;
  const max = Math.max(1, ...days.map((d) => Object.values(d).reduce((a, b) => a + b, 0)));
  const y = (n) => ((H - top - bottom) * n) / max;
  const ns = 'http://www.w3.org/2000/svg';
  const el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Records created per day by status' });
  svg.append(el('text', { x: 0, y: top + 8, 'font-size': 10, fill: '#667085' }, String(max)));
  svg.append(el('line', { x1: left, x2: W, y1: H - bottom, y2: H - bottom, stroke: '#e3e6ec' }));
  const css = getComputedStyle(document.documentElement);
  days.forEach((d, i) => {
    let base = H - bottom;
    const day = new Date(from + i * DAY).toISOString().slice(0, 10);
    for (const s of state.statuses) {
      const n = d[s] ?? 0;
      if (!n) continue;
      const h = y(n);
      base -= h;
      const r = el('rect', { x: left + i * barW + 1, y: base, width: Math.max(1, barW - 2), height: h, fill: css.getPropertyValue(`--${s}`).trim() || '#888' });
      r.append(el('title', {}, `${day} ${s}: ${n}`));
      svg.append(r);
    }
    if ((days.length - 1 - i) % 7 === 0) {
      svg.append(el('text', { x: left + i * barW, y: H - 6, 'font-size': 10, fill: '#667085' }, day.slice(5)));
    }
  });
  const legend = document.createElement('div');
  legend.className = 'legend';
  for (const s of state.statuses) {
    const item = document.createElement('span');
    item.innerHTML = `<i class="s-${s}"></i>`;
    item.append(label(s));
    legend.append(item);
  }
  $('#chart').replaceChildren(svg, legend);
}

// ---- the records table ----

function resetPaging() {
  state.pages = [{}];
  state.page = 0;
}

function listParams() {
  const p = { ...state.filters, sort: `${state.sort.key}:${state.sort.dir}`, limit: state.limit, with_count: 'true' };
  return { ...p, ...state.pages[state.page] };
}

let listSeq = 0;

async function loadList() {
  const seq = ++listSeq;
  const body = await api(`${projectPath()}/replication_records`, listParams());
  if (seq !== listSeq) return; // a later request has been made: its answer wins
  performance.mark('list-answered');
  clearError();
  state.nextMarker = body.next_marker ?? null;
  state.rows.clear();
  $('#rows').replaceChildren(...body.replication_records.map((r) => {
    const tr = rowOf(r);
    state.rows.set(r.id, tr);
    return tr;
  }));
  const first = state.page * state.limit;
  const n = body.replication_records.length;
  $('#range').textContent = n ? `${first + 1}–${first + n} of ${body.count}` : `none of ${body.count}`;
  $('#prev').disabled = state.page === 0;
  $('#first').disabled = state.page === 0;
  $('#next').disabled = !state.nextMarker;
  for (const th of document.querySelectorAll('th[data-sort]')) {
    th.dataset.dir = th.dataset.sort === state.sort.key ? state.sort.dir : '';
  }
  // The first paint of the rows, for the browser test's render budget.
  // Two frames: the second callback runs once the first frame is painted.
  requestAnimationFrame(() => requestAnimationFrame(() => performance.measure('rows-rendered', 'list-answered')));
}

// Bidirectional controls in data (a U+202E in a region name showed `evil`
// as `live`) are shown as what they are, never obeyed.
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
function inert(text) {
  return typeof text === 'string'
    ? text.replace(BIDI, (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}⟩`)
    : text;
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  td.textContent = inert(text) ?? '—';
  tr.append(td);
  return td;
}

function rowOf(r) {
  const tr = document.createElement('tr');
  tr.dataset.id = r.id;
  fillRow(tr, r);
  tr.addEventListener('click', () => openDrawer(r.id).catch(showError));
  return tr;
}

function fillRow(tr, r) {
  tr.replaceChildren();
  cell(tr, r.id, 'id').title = inert(r.id);
  const st = cell(tr, '');
  const badge = document.createElement('span');
  badge.className = `badge s-${r.status}`;
  badge.textContent = label(r.status);
  st.replaceChildren(badge);
  cell(tr, r.source_region);
  cell(tr, r.destination_region, 'wide');
  cell(tr, r.plan_id, 'wide');
  const p = cell(tr, '', 'wide');
  p.innerHTML = '<span class="bar-p"><b></b></span> ';
  p.querySelector('b').style.width = `${r.extra_info.progress}%`;
  p.append(`${r.extra_info.progress}%`);
  cell(tr, r.created_at);
  cell(tr, r.updated_at, 'wide');
}

function flash(tr) {
  tr.classList.remove('fresh');
  void tr.offsetWidth; // restart the animation
  tr.classList.add('fresh');
}

// Does a record pass the table's filters? `null` when only the server can
// judge (stuck, RFC 3339 windows): such tables only update the rows shown.
function matches(r) {
  const f = state.filters;
  if (f.stuck) return null;
  const eq = (k) => f[k] === undefined || f[k] === r[k];
  const api = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?$/;
  const time = (v) => (api.test(v) ? v.padEnd(26, v.includes('.') ? '0' : '.000000') : null);
  for (const [k, field, after] of [['created_after', 'created_at', true], ['created_before', 'created_at', false], ['updated_after', 'updated_at', true], ['updated_before', 'updated_at', false]]) {
    if (f[k] === undefined) continue;
    const t = time(f[k]);
    if (t === null) return null;
    if (after ? r[field] < t : r[field] >= t) return false;
  }
  const item = f.checkpoint_item_id;
  return eq('status') && eq('source_region') && eq('destination_region')
    && eq('source_checkpoint_item_id') && eq('destination_checkpoint_item_id')
    && (item === undefined || item === r.source_checkpoint_item_id || item === r.destination_checkpoint_item_id);
}

function onChange(r) {
  const tr = state.rows.get(r.id);
  const fits = matches(r);
  if (tr && fits === false) {
    onRemoved(r.id); // it no longer passes the filters
  } else if (tr) {
    fillRow(tr, r);
    flash(tr);
  } else if (state.page === 0 && state.sort.key === 'created_at' && state.sort.dir === 'desc' && fits === true) {
    const row = rowOf(r);
    state.rows.set(r.id, row);
    $('#rows').prepend(row);
    flash(row);
    const rows = $('#rows').children;
    while (rows.length > state.limit) {
      state.rows.delete(rows[rows.length - 1].dataset.id);
      rows[rows.length - 1].remove();
    }
  }
  refreshTilesSoon();
  refreshChartSoon();
}

// A change moved the record to another project.
function onRemoved(id) {
  state.rows.get(id)?.remove();
  state.rows.delete(id);
  refreshTilesSoon();
  refreshChartSoon();
}

// ---- filters, sorting, paging ----

function readFilterForm() {
  const form = new FormData($('#filters'));
  state.filters = {};
  for (const [k, v] of form) {
    const value = String(v).trim();
    if (k === 'limit') state.limit = Number(value);
    else if (value) state.filters[k] = value;
  }
}

function writeFilterForm() {
  const form = $('#filters');
  for (const el of form.elements) {
    if (el.name && el.name !== 'limit') el.value = state.filters[el.name] ?? '';
  }
}

async function loadRegions() {
  const { regions } = await api(`${projectPath()}/replication_capabilities`);
  const names = new Set(regions.flatMap((r) => [r.name, ...r.replication_destinations]));
  $('#regions').replaceChildren(...[...names].sort().map((n) => new Option(inert(n), n)));
}

function wire() {
  $('#signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = $('#token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    start().catch(showError);
  });
  $('#signout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    clearError();
    signIn();
  });
  $('#project').addEventListener('change', (e) => {
    state.project = e.target.value;
    state.filters = {};
    writeFilterForm();
    openProject().catch(showError);
  });
  $('#filters').addEventListener('submit', (e) => {
    e.preventDefault();
    readFilterForm();
    resetPaging();
    markActiveTile();
    loadList().catch(showError);
  });
  $('#filters').addEventListener('reset', () => setTimeout(() => {
    readFilterForm();
    resetPaging();
    markActiveTile();
    loadList().catch(showError);
  }));
  for (const th of document.querySelectorAll('th[data-sort]')) {
    th.addEventListener('click', () => {
      const key = th.dataset.sort;
      state.sort = { key, dir: state.sort.key === key && state.sort.dir === 'desc' ? 'asc' : 'desc' };
      resetPaging();
      loadList().catch(showError);
    });
  }
  $('#next').addEventListener('click', () => {
    state.pages[state.page + 1] = { marker: state.nextMarker };
    state.page += 1;
    loadList().catch(showError);
  });
  $('#prev').addEventListener('click', () => {
    state.page -= 1;
    state.pages[state.page] ??= { offset: state.page * state.limit };
    loadList().catch(showError);
  });
  $('#first').addEventListener('click', () => {
    resetPaging();
    loadList().catch(showError);
  });
  $('#page').addEventListener('change', (e) => {
    const n = Math.max(1, Math.floor(Number(e.target.value) || 1));
    state.pages = [];
    state.page = n - 1;
    state.pages[state.page] = n === 1 ? {} : { offset: (n - 1) * state.limit };
    loadList().catch(showError);
  });
  $('#close').addEventListener('click', () => { $('#drawer').hidden = true; });
  $('#export').addEventListener('click', () => exportRecords().catch(showError));
  $('#as-of-form').addEventListener('submit', (e) => {
    e.preventDefault();
    openDrawer(state.drawer.id, $('#as-of').value.trim()).catch(showError);
  });
  $('#as-of-now').addEventListener('click', () => openDrawer(state.drawer.id).catch(showError));
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') $('#drawer').hidden = true; });
}

// ---- the record drawer ----

// With `asOf`, the record and its events as they were then (the API's
// `as_of`: folded from the events that occurred before it).
async function openDrawer(id, asOf = '') {
  const base = `${projectPath()}/replication_records/${encodeURIComponent(id)}`;
  const at = asOf ? { as_of: asOf } : {};
  const [{ replication_record: r }, trail] = await Promise.all([api(base, at), api(`${base}/events`, at)]);
  state.drawer = { id, asOf };
  $('#drawer-title').textContent = inert(r.id);
  $('#as-of').value = asOf;
  $('#as-of-shown').hidden = !asOf;
  $('#as-of-shown').textContent = asOf ? inert(`as of ${asOf}: from the ${trail.events.length}${trail.next_marker ? '+' : ''} events before it`) : '';
  const fields = Object.entries({ ...r, ...r.extra_info }).filter(([k]) => k !== 'extra_info' && k !== 'id');
  $('#drawer-fields').replaceChildren(...fields.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = inert(k);
    const dd = document.createElement('dd');
    dd.dataset.field = k;
    dd.textContent = v === null ? '—' : inert(String(v));
    return [dt, dd];
  }));
  $('#drawer-events').replaceChildren();
  showEvents(base, trail, at);
  $('#drawer').hidden = false;
}

// The export of what the table's filters and sort select, in the chosen
// format, fetched with the token (a link cannot send it) and saved.
async function exportRecords() {
  const format = $('#export-format').value;
  const params = { ...state.filters, sort: `${state.sort.key}:${state.sort.dir}`, format };
  const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  $('#export-status').textContent = 'exporting…';
  let text;
  try {
    const resp = await fetch(`${projectPath()}/replication_records/export?${qs}`, { headers: { 'X-Auth-Token': state.token || '' } });
    if (!resp.ok) {
      const body = await resp.json().catch(() => null);
      throw new ApiError(resp.status, body?.error_code ?? `HTTP ${resp.status}`, body?.error_msg ?? resp.statusText);
    }
    // An export cut off mid-way rejects here: nothing is saved.
    text = await resp.text();
  } catch (e) {
    $('#export-status').textContent = '';
    throw e;
  }
  // Both formats have one line besides the records (CSV's header, NDJSON's
  // trailer); a record's line breaks are inside CSV quotes only in values
  // with breaks, which the count below then overstates — it is a summary.
  const records = format === 'ndjson' ? JSON.parse(text.trimEnd().split('\n').pop()).export.records : text.trimEnd().split('\n').length - 1;
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type: format === 'csv' ? 'text/csv' : 'application/x-ndjson' }));
  a.download = `replication_records-${state.project}.${format}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  $('#export-status').textContent = `exported ${records} records (${format})`;
}

// The trail comes a page at a time: its events, then a button for the next
// page while the API says more follow (`next_marker`).
function showEvents(base, { events, next_marker: next }, at = {}) {
  const list = $('#drawer-events');
  list.append(...events.map((e) => {
    const li = document.createElement('li');
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = inert(`#${e.seq} · ${e.topic}/${e.partition}@${e.offset} · ${e.effect}`);
    const title = document.createElement('strong');
    title.textContent = inert(`${e.event.type ?? '?'} at ${e.event.occurred_at ?? '?'}`);
    const pre = document.createElement('pre');
    pre.textContent = inert(JSON.stringify(e.event, null, 2));
    li.append(title, meta, pre);
    return li;
  }));
  $('#more-events').hidden = !next;
  $('#more-events').onclick = next
    ? () => api(`${base}/events`, { ...at, marker: next }).then((t) => showEvents(base, t, at)).catch(showError)
    : null;
}

// ---- the change feed: Server-Sent Events read with fetch (EventSource
// cannot send the token header) ----

function setLive(mode) {
  const el = $('#live');
  el.className = `live ${mode}`;
  el.textContent = { on: 'live', retry: 'reconnecting', off: 'offline' }[mode];
}

function closeFeed() {
  state.feed?.abort();
  state.feed = null;
  setLive('off');
}

// Opens the change feed. Resolves once it is connected (or could not be),
// so that what is loaded next misses no change.
function openFeed() {
  closeFeed();
  const ctl = new AbortController();
  state.feed = ctl;
  let connected;
  const ready = new Promise((resolve) => { connected = resolve; });
  readFeed(state.project, ctl.signal, connected).then(
    (reset) => reopen(ctl, reset),
    (e) => {
      connected();
      if (e?.name === 'AbortError') return;
      if (e instanceof ApiError && e.status !== 503) {
        showError(e);
        setLive('off');
        return;
      }
      reopen(ctl, false);
    },
  );
  return ready;
}

// After a reset (the feed could not catch up change by change) the feed
// reconnects at once from now, then what is shown is reloaded; after a
// dropped connection it resumes from the last change seen, with backoff.
function reopen(ctl, reset) {
  if (state.feed !== ctl) return;
  setLive('retry');
  setTimeout(async () => {
    if (state.feed !== ctl) return;
    await openFeed();
    if (reset) await Promise.all([loadList(), loadTiles(), loadChart()]).catch(showError);
  }, reset ? 0 : state.retry);
  if (!reset) state.retry = Math.min(state.retry * 2, 15000);
}

// Reads the feed until it ends; true when it ended with a reset.
async function readFeed(project, signal, connected) {
  const headers = { 'X-Auth-Token': state.token || '' };
  if (state.lastEventId !== null) headers['Last-Event-ID'] = state.lastEventId;
  const resp = await fetch(`/v1/${encodeURIComponent(project)}/replication_records/changes`, { headers, signal });
  if (!resp.ok) {
    const body = await resp.json().catch(() => null);
    throw new ApiError(resp.status, body?.error_code ?? `HTTP ${resp.status}`, body?.error_msg ?? resp.statusText);
  }
  setLive('on');
  connected();
  state.retry = 1000;
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const ev = { event: 'message', data: '', id: null };
      for (const line of block.split('\n')) {
        const i = line.indexOf(':');
        if (i === 0) continue; // a comment (keep-alive)
        const [k, v] = i < 0 ? [line, ''] : [line.slice(0, i), line.slice(i + 1).replace(/^ /, '')];
        if (k === 'data') ev.data += ev.data ? `\n${v}` : v;
        else if (k === 'event') ev.event = v;
        else if (k === 'id') ev.id = v;
      }
      if (ev.id !== null) state.lastEventId = ev.id;
      if (ev.event === 'record') onChange(JSON.parse(ev.data).replication_record);
      if (ev.event === 'removed') onRemoved(JSON.parse(ev.data).id);
      if (ev.event === 'reset') {
        state.lastEventId = null;
        return true;
      }
    }
  }
}

// ---- start ----

async function boot() {
  // `#token=…` (the demo's printed link) signs in once and leaves the URL.
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromUrl) {
    state.token = fromUrl;
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    history.replaceState(null, '', location.pathname);
  }
  const resp = await fetch('/openapi.json');
  if (!resp.ok) throw new Error(`could not load /openapi.json: HTTP ${resp.status}`);
  const doc = await resp.json();
  state.statuses = doc.components.schemas.Status.enum;
  const sel = $('#filters select[name=status]');
  sel.append(...state.statuses.map((s) => new Option(label(s), s)));
  wire();
  if (state.token) await start();
  else signIn();
}

window.addEventListener('unhandledrejection', (e) => {
  e.preventDefault();
  showError(e.reason);
});
boot().catch(showError);

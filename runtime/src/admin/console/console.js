// The Sluice console: reads the admin API's feed (`/events`) and shows the
// run; its buttons call the admin API with the run's token. Text from the
// data only ever goes into the page as text (textContent), never as markup.
'use strict';

const WINDOW_MS = 10 * 60 * 1000; // the charts' span
const MAX_DEAD = 500; // dead letters kept in the page
const SVG = 'http://www.w3.org/2000/svg';

const page = {
  token: null,
  status: null,
  samples: [],
  dead: [],
  profile: null,
  previousProfile: null,
  connected: false,
  reader: null,
};

function $(id) {
  return document.getElementById(id);
}

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'onclick') e.addEventListener('click', v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function fmt(n) {
  if (n === undefined || n === null) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: 1 });
}

function fmtRate(n) {
  if (!isFinite(n)) return '–';
  if (n >= 10000) return (n / 1000).toFixed(0) + 'k';
  if (n >= 1000) return (n / 1000).toFixed(1) + 'k';
  return n.toFixed(n < 10 ? 1 : 0);
}

function fmtMs(ms) {
  if (ms >= 60000) return (ms / 60000).toFixed(1) + ' min';
  if (ms >= 1000) return (ms / 1000).toFixed(1) + ' s';
  return ms.toFixed(0) + ' ms';
}

function fmtTime(micros) {
  const d = new Date(micros / 1000);
  return d.toLocaleTimeString('en-GB', { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

function short(version) {
  return version ? String(version).slice(0, 12) : '';
}

function replace(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

// ---- the token ----

function takeTokenFromUrl() {
  const m = /^#token=([0-9A-Za-z]+)$/.exec(location.hash);
  if (m) {
    sessionStorage.setItem('sluice-token', m[1]);
    // Out of the address bar and the history.
    history.replaceState(null, '', location.pathname);
  }
  page.token = sessionStorage.getItem('sluice-token');
}

function askForToken(why) {
  page.token = null;
  sessionStorage.removeItem('sluice-token');
  $('login').hidden = false;
  $('main').hidden = true;
  $('login-error').textContent = why || '';
  setButtons();
  $('run-state').textContent = 'no token';
  $('run-state').className = 'badge warn';
}

function useToken() {
  const t = $('token-input').value.trim();
  if (!t) {
    $('login-error').textContent = 'Paste the token first.';
    return;
  }
  sessionStorage.setItem('sluice-token', t);
  page.token = t;
  $('token-input').value = '';
  connect();
}

// ---- the feed ----

async function connect() {
  if (!page.token) {
    askForToken('');
    return;
  }
  let response;
  try {
    response = await fetch('/events', {
      headers: { Authorization: 'Bearer ' + page.token, Accept: 'text/event-stream' },
      cache: 'no-store',
    });
  } catch (e) {
    disconnected('cannot reach the admin API');
    return;
  }
  if (response.status === 401) {
    askForToken('The admin API refused this token: it changes with every run.');
    return;
  }
  if (!response.ok || !response.body) {
    disconnected('the admin API answered ' + response.status);
    return;
  }
  $('login').hidden = true;
  $('main').hidden = false;
  page.samples = [];
  page.dead = [];
  page.connected = true;
  const reader = response.body.getReader();
  page.reader = reader;
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        onBlock(block);
      }
    }
  } catch (e) {
    // The connection broke.
  }
  disconnected('the run ended or the connection broke');
}

function disconnected(why) {
  page.connected = false;
  $('run-state').textContent = 'disconnected';
  $('run-state').className = 'badge bad';
  $('run-state').title = why;
  setButtons();
  setTimeout(connect, 2000);
}

function onBlock(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (event !== 'status' || data.length === 0) return;
  let msg;
  try {
    msg = JSON.parse(data.join('\n'));
  } catch (e) {
    console.warn('sluice console: an event that is not JSON', e);
    return;
  }
  page.status = msg.status;
  page.previousProfile = page.profile;
  page.profile = { t: msg.t, stages: msg.profile || [] };
  page.samples.push(...msg.samples);
  const since = msg.t - WINDOW_MS;
  while (page.samples.length && page.samples[0].t < since) page.samples.shift();
  page.dead.push(...msg.dead_letters);
  if (page.dead.length > MAX_DEAD) page.dead.splice(0, page.dead.length - MAX_DEAD);
  render();
}

// ---- actions ----

function confirmThen(text, action) {
  const dialog = $('confirm');
  $('confirm-text').textContent = text;
  const ok = $('confirm-ok');
  const cancel = $('confirm-cancel');
  const close = () => {
    ok.onclick = null;
    cancel.onclick = null;
    dialog.close();
  };
  ok.onclick = () => {
    close();
    action();
  };
  cancel.onclick = close;
  dialog.showModal();
}

async function post(path, what) {
  if (!page.token) {
    toast('No token: the console cannot act without this run\'s token.', true);
    return;
  }
  let response;
  let body = {};
  try {
    response = await fetch(path, { method: 'POST', headers: { Authorization: 'Bearer ' + page.token } });
    body = await response.json().catch(() => ({}));
  } catch (e) {
    toast(what + ': cannot reach the admin API', true);
    return;
  }
  if (response.status === 401) {
    askForToken('The admin API refused this token.');
    return;
  }
  if (!response.ok) {
    toast(what + ' refused: ' + (body.error || response.status), true);
    return;
  }
  if (body.live) toast(what + ': version ' + short(body.live) + ' is live');
  else toast(what + ': done');
}

function act(path, what, question) {
  confirmThen(question, () => post(path, what));
}

function toast(text, bad) {
  const t = $('toast');
  t.textContent = text;
  t.className = bad ? 'show bad' : 'show';
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.className = ''), 6000);
}

function setButtons() {
  const s = page.status;
  const can = page.connected && !!page.token && s && !s.stopping;
  $('btn-reload').disabled = !can;
  $('btn-stop').disabled = !can;
  $('btn-pause').disabled = !can || s.paused;
  $('btn-resume').disabled = !can || !s.paused;
}

// ---- rendering ----

// Records per second of a counter over the samples (`pick` reads it).
function rates(pick) {
  const out = [];
  for (let i = 1; i < page.samples.length; i++) {
    const a = page.samples[i - 1];
    const b = page.samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    out.push({ t: b.t, v: Math.max(0, (pick(b) - pick(a)) / dt) });
  }
  return out;
}

// The rate over the last few seconds (smoother than one step).
function rateNow(pick) {
  const s = page.samples;
  if (s.length < 2) return 0;
  const b = s[s.length - 1];
  const a = s[Math.max(0, s.length - 4)];
  const dt = (b.t - a.t) / 1000;
  return dt > 0 ? Math.max(0, (pick(b) - pick(a)) / dt) : 0;
}

function render() {
  const s = page.status;
  if (!s) return;
  $('pipeline').textContent = s.pipeline;
  const badge = $('run-state');
  badge.title = '';
  if (s.stopping) {
    badge.textContent = 'stopping';
    badge.className = 'badge warn';
  } else if (s.paused) {
    badge.textContent = 'paused';
    badge.className = 'badge warn';
  } else {
    badge.textContent = 'running';
    badge.className = 'badge ok';
  }
  $('source-state').textContent = s.source && s.source.state ? 'source: ' + s.source.state : '';
  setButtons();
  renderOverview(s);
  renderTransforms(s);
  renderShadow(s);
  renderDead(s);
}

function renderOverview(s) {
  $('n-in').textContent = fmt(s.records_in);
  $('n-written').textContent = fmt(s.written);
  $('n-dropped').textContent = fmt(s.dropped);
  $('n-dead').textContent = fmt(s.dead_lettered);
  // Records an `emit` added are written too; in-flight ones are not yet counted.
  const accounted = s.written + s.dropped + s.dead_lettered;
  const check = $('balance-check');
  if (accounted === s.records_in) {
    check.textContent = 'balanced';
    check.className = 'badge ok';
  } else {
    check.textContent = (accounted > s.records_in ? '+' : '') + fmt(accounted - s.records_in) + ' (emitted or in flight)';
    check.className = 'badge';
  }
  renderGraph(s);
  const series = [
    { name: 'in', cls: 'c-in', points: rates((x) => x.records_in) },
    { name: 'written', cls: 'c-written', points: rates((x) => x.written) },
    { name: 'dead-lettered', cls: 'c-dead', points: rates((x) => x.dead_lettered) },
  ];
  chart($('chart-rate'), series, fmtRate);
  const lag = s.source && s.source.lag;
  const lagSeries = [];
  if (page.samples.some((x) => x.lag_seconds !== null && x.lag_seconds !== undefined)) {
    lagSeries.push({
      name: 'seconds behind',
      cls: 'c-lag',
      points: page.samples.filter((x) => x.lag_seconds !== null).map((x) => ({ t: x.t, v: x.lag_seconds })),
    });
  }
  chart($('chart-lag'), lagSeries, (v) => v.toFixed(1) + ' s');
  if (lag) {
    const parts = [fmt(lag.seconds) + ' s behind'];
    if (lag.records !== undefined) parts.push(fmt(lag.records) + ' records');
    else parts.push(fmt(lag.bytes) + ' bytes');
    if (lag.retained_bytes !== undefined) parts.push(fmt(lag.retained_bytes) + ' bytes retained by the slot');
    $('lag-now').textContent = parts.join(', ') + (lag.warning ? ' — ' + lag.warning : '');
  } else {
    $('lag-now').textContent = 'This source reports no lag (a file source is done when it is read).';
  }
  renderStageTimes(s);
  renderErrors(s);
}

function stageNames(s) {
  return ['source', ...s.transforms.map((t) => t.name), 'sink'];
}

function stageRate(s, i, n) {
  if (i === 0) return rateNow((x) => x.records_in);
  if (i === n - 1) return rateNow((x) => x.written);
  return rateNow((x) => x.transforms[i - 1] || 0);
}

function renderGraph(s) {
  const svg = $('graph');
  const names = stageNames(s);
  const n = names.length;
  const w = 150;
  const gap = 40;
  const h = 58;
  const width = n * w + (n - 1) * gap + 20;
  svg.setAttribute('viewBox', `0 0 ${width} 170`);
  svg.setAttribute('width', width);
  svg.setAttribute('height', 170);
  const kids = [];
  const defs = svgEl('defs');
  const marker = svgEl('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' });
  marker.append(svgEl('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }));
  defs.append(marker);
  kids.push(defs);
  names.forEach((name, i) => {
    const x = 10 + i * (w + gap);
    const kind = i === 0 ? 'source' : i === n - 1 ? 'sink' : 'transform';
    const g = svgEl('g', { class: 'node ' + kind, 'data-stage': name });
    g.append(svgEl('rect', { x, y: 10, width: w, height: h, rx: 8 }));
    g.append(svgEl('text', { x: x + w / 2, y: 32, class: 'node-name' }, name.length > 18 ? name.slice(0, 17) + '…' : name));
    const t = i > 0 && i < n - 1 ? s.transforms[i - 1] : null;
    const sub = t ? 'v ' + short(t.live) : kind;
    g.append(svgEl('text', { x: x + w / 2, y: 47, class: 'node-sub' }, sub));
    g.append(svgEl('text', { x: x + w / 2, y: 62, class: 'node-rate' }, fmtRate(stageRate(s, i, n)) + ' rec/s'));
    kids.push(g);
    if (i > 0) kids.push(svgEl('line', { x1: x - gap, y1: 10 + h / 2, x2: x - 2, y2: 10 + h / 2, class: 'edge', 'marker-end': 'url(#arrow)' }));
  });
  // The dead-letter sink, fed by every stage.
  const dx = 10 + (n - 1) * (w + gap);
  const g = svgEl('g', { class: 'node dlq', 'data-stage': 'dead letters' });
  g.append(svgEl('rect', { x: dx, y: 105, width: w, height: h, rx: 8 }));
  g.append(svgEl('text', { x: dx + w / 2, y: 127, class: 'node-name' }, 'dead letters'));
  g.append(svgEl('text', { x: dx + w / 2, y: 142, class: 'node-sub' }, fmt(s.dead_lettered) + ' in all'));
  g.append(svgEl('text', { x: dx + w / 2, y: 157, class: 'node-rate' }, fmtRate(rateNow((x) => x.dead_lettered)) + ' rec/s'));
  kids.push(g);
  kids.push(svgEl('path', { d: `M ${10 + w / 2} ${10 + h} V ${105 + h / 2} H ${dx - 2}`, class: 'edge dlq-edge', 'marker-end': 'url(#arrow)' }));
  replace(svg, kids);
}

function renderStageTimes(s) {
  const tbody = $('stage-times').tBodies[0];
  const now = page.profile;
  const before = page.previousProfile;
  const names = stageNames(s);
  const rows = (now.stages || []).map((st, i) => {
    const work = st.work_ms.reduce((a, [, ms]) => a + ms, 0);
    let busy = '–';
    const prev = before && before.stages && before.stages[i];
    if (prev && now.t > before.t) {
      const prevWork = prev.work_ms.reduce((a, [, ms]) => a + ms, 0);
      busy = Math.min(100, Math.max(0, ((work - prevWork) / (now.t - before.t)) * 100)).toFixed(0) + ' %';
    }
    return el('tr', {}, el('td', {}, st.stage), el('td', { class: 'num' }, fmtRate(stageRate(s, i, names.length))),
      el('td', { class: 'num' }, busy), el('td', { class: 'num' }, fmtMs(work)),
      el('td', { class: 'num' }, fmtMs(st.waiting_for_input_ms)), el('td', { class: 'num' }, fmtMs(st.waiting_for_output_ms)));
  });
  replace(tbody, rows);
}

function renderErrors(s) {
  const rows = [];
  const failed = Object.entries(s.reasons || {}).filter(([reason]) => /: (trap|deadline|memory|plugin_failed)/.test(reason));
  const pluginFailures = failed.reduce((a, [, n]) => a + n, 0);
  rows.push(el('tr', {}, el('td', {}, 'plugin failures (records dead-lettered)'), el('td', { class: 'num' }, fmt(pluginFailures)), el('td', {}, failed.map(([r]) => r).join(', '))));
  rows.push(el('tr', {}, el('td', {}, 'candidate versions refused'), el('td', { class: 'num' }, fmt(s.reload_failures)),
    el('td', {}, s.transforms.map((t) => t.last_refusal).filter(Boolean).join(' | '))));
  rows.push(el('tr', {}, el('td', {}, 'versions swapped in'), el('td', { class: 'num' }, fmt(s.reloads)), el('td', {}, '')));
  if (s.source && s.source.state && /reconnect|retry/i.test(s.source.state)) {
    rows.push(el('tr', { class: 'warn' }, el('td', {}, 'source'), el('td', {}, ''), el('td', {}, s.source.state)));
  }
  for (const c of s.connectors || []) {
    rows.push(el('tr', {}, el('td', {}, c.kind + ' ' + c.name + ': retries / restarts'), el('td', { class: 'num' }, fmt(c.retries) + ' / ' + fmt(c.restarts)),
      el('td', {}, c.last_error ? fmtTime(c.last_error[0] * 1000) + ' ' + c.last_error[1] : c.state)));
  }
  replace($('errors').tBodies[0], rows);
}

// The cards stay; their parts are updated in place, so that a button is
// never replaced under the pointer.
const cards = { transforms: new Map(), shadows: new Map() };

// Replaces `node`'s children only when `key` changed since the last time.
function replaceIfChanged(node, key, build) {
  if (node.dataset.key === key) return;
  node.dataset.key = key;
  replace(node, build());
}

function transformCard(t) {
  const card = el('article', { class: 'card', 'data-transform': t.name },
    el('h2', {}, t.name),
    el('dl', {},
      el('dt', {}, 'live'), el('dd', { class: 'mono live-version' }),
      el('dt', {}, 'kept for rollback'), el('dd', { class: 'mono kept' }),
      el('dt', {}, 'waiting for its trial batch'), el('dd', { class: 'mono pending' }),
      el('dt', {}, 'last refusal'), el('dd', { class: 'refusal' })),
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'act rollback', 'data-transform': t.name }),
      el('button', { type: 'button', class: 'act promote', 'data-transform': t.name }, 'Promote shadow')),
    el('h3', {}, 'Records per version'), el('div', { class: 'by-version' }),
    el('h3', {}, 'History'), el('div', { class: 'history-box' }));
  card.querySelector('.rollback').addEventListener('click', () => {
    const t = page.status.transforms.find((x) => x.name === card.dataset.transform);
    const previous = t && t.previous[t.previous.length - 1];
    if (!previous) return;
    act('/rollback/' + encodeURIComponent(t.name), 'rollback of ' + t.name,
      `Roll transform “${t.name}” back from ${short(t.live)} to ${short(previous)}? The change applies between two batches.`);
  });
  card.querySelector('.promote').addEventListener('click', () => promote(card.dataset.transform));
  return card;
}

function promote(name) {
  const t = page.status.transforms.find((x) => x.name === name);
  if (!t || !t.shadow) return;
  act('/promote/' + encodeURIComponent(name), 'promotion of ' + name, `Make the shadow ${short(t.shadow.version)} of “${name}” live?`);
}

function renderTransforms(s) {
  const list = $('transform-list');
  const can = !!page.token && !s.stopping;
  for (const t of s.transforms) {
    let card = cards.transforms.get(t.name);
    if (!card) {
      card = transformCard(t);
      cards.transforms.set(t.name, card);
      list.append(card);
    }
    const previous = t.previous.length ? t.previous[t.previous.length - 1] : null;
    card.querySelector('.live-version').textContent = t.live;
    card.querySelector('.kept').textContent = t.previous.length ? t.previous.map(short).join(' ← ') : 'none';
    card.querySelector('.pending').textContent = t.pending ? short(t.pending) : '–';
    const refusal = card.querySelector('.refusal');
    refusal.textContent = t.last_refusal || '–';
    refusal.className = 'refusal' + (t.last_refusal ? ' error' : '');
    const rollback = card.querySelector('.rollback');
    rollback.disabled = !previous || !can;
    rollback.textContent = 'Roll back' + (previous ? ' to ' + short(previous) : '');
    card.querySelector('.promote').disabled = !t.shadow || !can;
    replace(card.querySelector('.by-version'), el('table', { class: 'small' },
      el('thead', {}, el('tr', {}, el('th', {}, 'version'), el('th', {}, 'records'))),
      el('tbody', {}, t.records_by_version.map(([v, n], i, all) => el('tr', { class: i === all.length - 1 && v === t.live ? 'live' : '' }, el('td', { class: 'mono' }, short(v)), el('td', { class: 'num' }, fmt(n)))))));
    const last = t.history[t.history.length - 1];
    replaceIfChanged(card.querySelector('.history-box'), t.history.length + ':' + (last ? last.time : ''), () => el('table', { class: 'history' },
      el('thead', {}, el('tr', {}, ['time', 'event', 'version', 'from', 'canary', 'trial batch', 'detail'].map((h) => el('th', {}, h)))),
      el('tbody', {}, t.history.slice().reverse().map((e) => el('tr', { class: 'ev-' + e.event },
        el('td', {}, fmtTime(e.time)), el('td', {}, e.event), el('td', { class: 'mono' }, short(e.version)), el('td', { class: 'mono' }, short(e.from)),
        el('td', {}, e.canary || ''), el('td', {}, e.trial || ''), el('td', { class: 'detail' }, e.detail || ''))))));
  }
}

function valueText(v) {
  if (v === undefined) return '(absent)';
  return JSON.stringify(v);
}

// The fields of the live and the shadow record side by side.
function sideBySide(d) {
  const a = d.live_records || [];
  const b = d.shadow_records || [];
  if (a.length === 1 && b.length === 1) {
    const fa = a[0].fields || {};
    const fb = b[0].fields || {};
    const names = [...new Set([...Object.keys(fa), ...Object.keys(fb)])];
    return el('table', { class: 'diff' },
      el('thead', {}, el('tr', {}, el('th', {}, 'field'), el('th', {}, 'live'), el('th', {}, 'shadow'))),
      el('tbody', {}, names.map((n) => {
        const same = valueText(fa[n]) === valueText(fb[n]);
        return el('tr', { class: same ? '' : 'changed' }, el('td', {}, n), el('td', { class: 'mono' }, valueText(fa[n])), el('td', { class: 'mono' }, valueText(fb[n])));
      })));
  }
  const side = (recs) => (recs.length ? recs.map((r) => el('pre', {}, JSON.stringify(r.fields, null, 1))) : el('span', { class: 'muted' }, 'no record'));
  return el('div', { class: 'sides' }, el('div', {}, side(a)), el('div', {}, side(b)));
}

function shadowCard(name) {
  const card = el('article', { class: 'card shadow-card', 'data-transform': name },
    el('h2', { class: 'title' }),
    el('p', { class: 'shadow-summary' }, el('span', { class: 'compared' }), ' records compared, ', el('span', { class: 'differing' }),
      ' differ', el('span', { class: 'pct' }), ', ', el('span', { class: 'failed' }), ' batches the shadow failed on'),
    el('div', { class: 'actions' }, el('button', { type: 'button', class: 'act promote', 'data-transform': name })),
    el('div', { class: 'row counts' }),
    el('h3', {}, 'Latest differences, record by record (newest first)'),
    el('div', { class: 'differences' }));
  card.querySelector('.promote').addEventListener('click', () => promote(name));
  return card;
}

function renderShadow(s) {
  const shadows = s.transforms.filter((t) => t.shadow);
  $('shadow-count').textContent = shadows.length ? String(shadows.length) : '';
  $('no-shadow').hidden = shadows.length > 0;
  const list = $('shadow-list');
  for (const [name, card] of cards.shadows) {
    if (!shadows.some((t) => t.name === name)) {
      card.remove();
      cards.shadows.delete(name);
    }
  }
  for (const t of shadows) {
    const r = t.shadow;
    let card = cards.shadows.get(t.name);
    if (!card) {
      card = shadowCard(t.name);
      cards.shadows.set(t.name, card);
      list.append(card);
    }
    replace(card.querySelector('.title'), t.name, ': shadow ', el('span', { class: 'mono' }, short(r.version)), ' beside live ', el('span', { class: 'mono' }, short(t.live)));
    card.querySelector('.compared').textContent = fmt(r.compared);
    card.querySelector('.differing').textContent = fmt(r.differing);
    card.querySelector('.pct').textContent = r.compared ? ` (${((100 * r.differing) / r.compared).toFixed(2)} %)` : '';
    card.querySelector('.failed').textContent = fmt(r.failed_batches);
    const promoteButton = card.querySelector('.promote');
    promoteButton.disabled = !page.token || s.stopping;
    promoteButton.textContent = 'Promote ' + short(r.version);
    replace(card.querySelector('.counts'),
      el('table', { class: 'small by-outcome' }, el('thead', {}, el('tr', {}, el('th', {}, 'live → shadow'), el('th', {}, 'records'))),
        el('tbody', {}, Object.entries(r.by_outcome).map(([k, n]) => el('tr', {}, el('td', {}, k), el('td', { class: 'num' }, fmt(n)))))),
      el('table', { class: 'small' }, el('thead', {}, el('tr', {}, el('th', {}, 'field changed differently'), el('th', {}, 'records'))),
        el('tbody', {}, Object.entries(r.changed_fields).map(([k, n]) => el('tr', {}, el('td', {}, k), el('td', { class: 'num' }, fmt(n)))))));
    const newest = r.latest[r.latest.length - 1];
    replaceIfChanged(card.querySelector('.differences'), r.version + ':' + r.differing + ':' + (newest ? newest.position : ''), () => {
      const diffs = r.latest.slice().reverse().map((d) => el('div', { class: 'difference' },
        el('p', {}, el('strong', {}, d.position), ' live: ', el('span', { class: 'outcome' }, d.live), ' · shadow: ', el('span', { class: 'outcome' }, d.shadow),
          d.fields.length ? ' · fields: ' + d.fields.join(', ') : ''),
        sideBySide(d)));
      return diffs.length ? diffs : el('p', { class: 'muted' }, 'None yet.');
    });
  }
}

function syncOptions(select, values) {
  const have = new Set([...select.options].map((o) => o.value));
  for (const v of [...values].sort()) if (!have.has(v)) select.append(el('option', { value: v }, v));
}

function renderDead(s) {
  $('dead-count').textContent = s.dead_lettered ? fmt(s.dead_lettered) : '';
  chart($('chart-dead'), [{ name: 'dead-lettered', cls: 'c-dead', points: rates((x) => x.dead_lettered) }], fmtRate);
  replace($('reasons').tBodies[0], Object.entries(s.reasons || {}).sort((a, b) => b[1] - a[1])
    .map(([r, n]) => el('tr', {}, el('td', {}, r), el('td', { class: 'num' }, fmt(n)))));
  syncOptions($('filter-code'), new Set(page.dead.map((d) => d.code)));
  syncOptions($('filter-stage'), new Set(page.dead.map((d) => d.stage)));
  renderDeadRows();
}

function renderDeadRows() {
  const code = $('filter-code').value;
  const stage = $('filter-stage').value;
  const shown = page.dead.filter((d) => (!code || d.code === code) && (!stage || d.stage === stage)).slice(-200).reverse();
  $('dead-shown').textContent = `${shown.length} shown of the latest ${page.dead.length}`;
  replace($('dead-letters').tBodies[0], shown.map((d) => el('tr', { 'data-code': d.code },
    el('td', {}, fmtTime(d.time)), el('td', {}, d.stage), el('td', {}, d.kind), el('td', { class: 'code' }, d.code), el('td', {}, d.field || ''),
    el('td', { class: 'message' }, d.message), el('td', { class: 'mono' }, short(d.plugin_version)), el('td', {}, d.position))));
}

// A line chart of `series` over the last ten minutes.
function chart(svg, series, label) {
  const W = 520;
  const H = 170;
  const L = 56;
  const B = 20;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const kids = [];
  // From the first sample (at least a minute back) to now, at most ten minutes.
  const now = page.samples.length ? page.samples[page.samples.length - 1].t : Date.now();
  const first = page.samples.length ? page.samples[0].t : now;
  const span = Math.min(WINDOW_MS, Math.max(60 * 1000, now - first));
  const t0 = now - span;
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    kids.push(svgEl('text', { x: W / 2, y: H / 2, class: 'empty' }, 'no data yet'));
    replace(svg, kids);
    return;
  }
  const max = Math.max(1e-9, ...all.map((p) => p.v)) * 1.1;
  const x = (t) => L + ((t - t0) / span) * (W - L - 8);
  const y = (v) => 8 + (1 - v / max) * (H - B - 8);
  kids.push(svgEl('line', { x1: L, y1: H - B, x2: W - 8, y2: H - B, class: 'axis' }));
  kids.push(svgEl('line', { x1: L, y1: 8, x2: L, y2: H - B, class: 'axis' }));
  kids.push(svgEl('text', { x: L - 4, y: 14, class: 'tick end' }, label(max)));
  kids.push(svgEl('text', { x: L - 4, y: H - B, class: 'tick end' }, '0'));
  kids.push(svgEl('text', { x: L, y: H - 4, class: 'tick' }, '−' + (span >= 120000 ? Math.round(span / 60000) + ' min' : Math.round(span / 1000) + ' s')));
  kids.push(svgEl('text', { x: W - 8, y: H - 4, class: 'tick end' }, 'now'));
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p.t >= t0).map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
    if (pts) kids.push(svgEl('polyline', { points: pts, class: 'series ' + s.cls }));
    kids.push(svgEl('text', { x: L + 8 + i * 110, y: H - B - 6, class: 'legend ' + s.cls }, s.name));
  });
  replace(svg, kids);
}

// ---- start ----

function showTab(name) {
  for (const b of document.querySelectorAll('#tabs .tab')) b.classList.toggle('current', b.dataset.tab === name);
  for (const p of document.querySelectorAll('.tabpanel')) p.hidden = p.id !== name;
}

document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('#tabs .tab')) b.addEventListener('click', () => showTab(b.dataset.tab));
  $('token-connect').addEventListener('click', useToken);
  $('token-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') useToken();
  });
  $('btn-reload').addEventListener('click', () => act('/reload', 'reload', 'Reload the pipeline file and every plugin? Each new version runs its canary, then its first batch, before it goes live.'));
  $('btn-pause').addEventListener('click', () => act('/pause', 'pause', 'Pause the source? Batches in flight are finished; nothing new is read until you resume.'));
  $('btn-resume').addEventListener('click', () => act('/resume', 'resume', 'Resume reading from the source?'));
  $('btn-stop').addEventListener('click', () => act('/stop', 'stop', 'Stop the run? What is in flight is committed; the next run resumes from the checkpoint.'));
  $('filter-code').addEventListener('change', renderDeadRows);
  $('filter-stage').addEventListener('change', renderDeadRows);
  takeTokenFromUrl();
  connect();
});

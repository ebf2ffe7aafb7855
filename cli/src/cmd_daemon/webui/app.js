// unchoke's web UI: a client of the daemon's Transmission RPC, like transmission-remote.
// Vanilla JavaScript with no build step (see webui.rs for why). It keeps no state the
// daemon does not have: every refresh redraws from `torrent-get`.
'use strict';

const RPC = '/transmission/rpc';
const REFRESH_MS = 1500;
const SESSION_HEADER = 'X-Transmission-Session-Id';
// Transmission's status numbers.
const STATUS = ['Stopped', 'Queued to check', 'Checking', 'Queued', 'Downloading', 'Queued to seed', 'Seeding'];
const LIST_FIELDS = ['id', 'hashString', 'name', 'status', 'percentDone', 'metadataPercentComplete',
  'rateDownload', 'rateUpload', 'peersConnected', 'uploadRatio', 'eta', 'error', 'errorString',
  'totalSize', 'sizeWhenDone', 'labels'];
const DETAIL_FIELDS = ['id', 'name', 'hashString', 'downloadDir', 'totalSize', 'pieceCount',
  'pieceSize', 'peersConnected', 'isPrivate', 'addedDate', 'files', 'fileStats', 'trackers',
  'peers', 'labels', 'downloadLimit', 'downloadLimited', 'uploadLimit', 'uploadLimited',
  'seedRatioMode', 'seedRatioLimit', 'seedIdleMode', 'seedIdleLimit', 'sizeWhenDone'];
// A file's priority as the page names it, and back: Transmission keeps `wanted` and
// `priority` apart; the page shows one choice.
const PRIORITIES = ['skip', 'low', 'normal', 'high'];

let sessionId = null;
// The torrent whose details are open (its id), or null.
let detailsId = null;
// The torrent the remove dialog is about.
let removing = null;
const rows = new Map();

const $ = (id) => document.getElementById(id);

// The session id, from the header the page's own files are served with (see webui.rs):
// without it the first RPC call would be a 409, which the browser logs as an error.
async function fetchSessionId() {
  try {
    const response = await fetch('/', { method: 'HEAD', cache: 'no-store' });
    sessionId = response.headers.get(SESSION_HEADER) || sessionId;
  } catch (e) {
    // The RPC call's own handshake below takes over.
  }
}

// One RPC call. A stale or missing session id gets 409 with the id to use: Transmission's
// CSRF handshake, which a page of another origin cannot complete because it cannot read
// that header.
async function rpc(method, args = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const headers = { 'Content-Type': 'application/json' };
    if (sessionId) headers[SESSION_HEADER] = sessionId;
    let response;
    try {
      response = await fetch(RPC, {
        method: 'POST',
        headers,
        body: JSON.stringify({ method, arguments: args }),
        cache: 'no-store',
      });
    } catch (e) {
      throw new Error(`cannot reach the daemon (${e.message})`);
    }
    if (response.status === 409) {
      sessionId = response.headers.get(SESSION_HEADER);
      continue;
    }
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`);
    }
    const answer = await response.json();
    if (answer.result !== 'success') throw new Error(`${method}: ${answer.result}`);
    return answer.arguments;
  }
  throw new Error('the daemon kept refusing the session id');
}

function showError(message) {
  $('error-text').textContent = message;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error-text').textContent = '';
}

// Runs an action from a button or form; a failure shows in the error banner.
async function act(what, f) {
  try {
    await f();
    clearError();
  } catch (e) {
    showError(`${what} failed: ${e.message}`);
  }
  refresh();
}

// Sizes and rates in Transmission's units (powers of 1000).
function bytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

function rate(n) {
  return n > 0 ? `${bytes(n)}/s` : '–';
}

function eta(seconds) {
  if (seconds === -1) return '–';
  if (seconds < 0) return '∞';
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s}s`;
  return `${s}s`;
}

function ratio(r) {
  if (r === -1) return '–';
  if (r === -2) return '∞';
  return r.toFixed(2);
}

function percent(t) {
  // A magnet still fetching its metadata shows that progress instead.
  const p = t.metadataPercentComplete < 1 ? 0 : t.percentDone;
  return Math.floor(p * 1000) / 10;
}

function statusText(t) {
  if (t.error) return `Error: ${t.errorString}`;
  if (t.metadataPercentComplete < 1 && t.status !== 0) return 'Fetching metadata';
  return STATUS[t.status] || `Status ${t.status}`;
}

function cell(tr, className) {
  const td = document.createElement('td');
  td.className = className;
  tr.appendChild(td);
  return td;
}

function button(label, className, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

// A row, made once per torrent and updated in place, so keyboard focus on its buttons
// survives the refreshes.
function makeRow(t) {
  const tr = document.createElement('tr');
  tr.dataset.id = t.id;
  tr.dataset.hash = t.hashString;
  const r = { tr };
  r.name = cell(tr, 'name');
  r.title = document.createElement('span');
  r.labels = document.createElement('span');
  r.name.append(r.title, r.labels);
  const progress = cell(tr, 'progress');
  r.bar = document.createElement('progress');
  r.bar.max = 100;
  r.pct = document.createElement('span');
  r.pct.className = 'pct';
  progress.append(r.bar, r.pct);
  r.down = cell(tr, 'num down');
  r.up = cell(tr, 'num up');
  r.peers = cell(tr, 'num peers');
  r.ratio = cell(tr, 'num ratio');
  r.eta = cell(tr, 'num eta');
  r.status = cell(tr, 'status');
  const actions = cell(tr, 'actions');
  r.toggle = button('Pause', 'toggle', () => {
    const stopped = r.tr.dataset.status === '0';
    act(stopped ? 'Resume' : 'Pause', () => rpc(stopped ? 'torrent-start' : 'torrent-stop', { ids: [t.id] }));
  });
  r.details = button('Details', 'details', () => openDetails(t.id));
  r.remove = button('Remove', 'remove', () => askRemove(t.id, r.title.textContent));
  actions.append(r.toggle, r.details, r.remove);
  return r;
}

function updateRow(r, t) {
  const pct = percent(t);
  r.tr.dataset.status = t.status;
  r.title.textContent = t.name;
  r.name.title = t.hashString;
  const labels = (t.labels || []).join(',');
  if (r.labels.dataset.labels !== labels) {
    r.labels.dataset.labels = labels;
    r.labels.replaceChildren(...(t.labels || []).map((l) => {
      const badge = document.createElement('span');
      badge.className = 'label';
      badge.textContent = l;
      return badge;
    }));
  }
  r.bar.value = pct;
  r.bar.setAttribute('aria-label', `${t.name}: ${pct}%`);
  r.pct.textContent = `${pct}%`;
  r.down.textContent = rate(t.rateDownload);
  r.up.textContent = rate(t.rateUpload);
  r.peers.textContent = t.peersConnected;
  r.ratio.textContent = ratio(t.uploadRatio);
  r.eta.textContent = eta(t.eta);
  r.status.textContent = statusText(t);
  r.tr.classList.toggle('stopped', t.status === 0);
  r.tr.classList.toggle('failed', !!t.error);
  const label = t.status === 0 ? 'Resume' : 'Pause';
  r.toggle.textContent = label;
  r.toggle.setAttribute('aria-label', `${label} ${t.name}`);
  r.details.setAttribute('aria-label', `Details of ${t.name}`);
  r.remove.setAttribute('aria-label', `Remove ${t.name}`);
}

function renderList(torrents) {
  const body = $('torrent-rows');
  const seen = new Set();
  for (const t of torrents) {
    seen.add(t.id);
    let r = rows.get(t.id);
    if (!r) {
      r = makeRow(t);
      rows.set(t.id, r);
    }
    updateRow(r, t);
    // Keep the daemon's order (by id) whatever was added or removed.
    body.appendChild(r.tr);
  }
  for (const [id, r] of rows) {
    if (!seen.has(id)) {
      r.tr.remove();
      rows.delete(id);
    }
  }
  $('empty').hidden = torrents.length > 0;
  const down = torrents.reduce((n, t) => n + t.rateDownload, 0);
  const up = torrents.reduce((n, t) => n + t.rateUpload, 0);
  $('totals').textContent = `${torrents.length} torrent${torrents.length === 1 ? '' : 's'} · ↓ ${rate(down)} · ↑ ${rate(up)}`;
}

function fact(dl, term, value) {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  dd.textContent = value;
  dl.append(dt, dd);
}

function renderDetails(t) {
  $('details-title').textContent = `Details: ${t.name}`;
  const dl = $('details-facts');
  dl.replaceChildren();
  fact(dl, 'Info-hash', t.hashString);
  fact(dl, 'Size', bytes(t.totalSize));
  fact(dl, 'Pieces', t.pieceCount ? `${t.pieceCount} × ${bytes(t.pieceSize)}` : 'not known yet');
  fact(dl, 'Peers connected', t.peersConnected);
  fact(dl, 'Private', t.isPrivate ? 'yes' : 'no');
  fact(dl, 'Download directory', t.downloadDir);
  fact(dl, 'Added', new Date(t.addedDate * 1000).toLocaleString());
  renderFiles(t);
  renderPeers(t.peers || []);
  renderTorrentSettings(t);
  const trackers = $('details-trackers');
  trackers.replaceChildren();
  for (const tr of t.trackers || []) {
    const li = document.createElement('li');
    li.textContent = `Tier ${tr.tier + 1}: ${tr.announce}`;
    trackers.appendChild(li);
  }
  if (!t.trackers || t.trackers.length === 0) {
    const li = document.createElement('li');
    li.textContent = 'None known (DHT and peer exchange only).';
    trackers.appendChild(li);
  }
}

// A table body's one row saying why it is empty.
function emptyRow(body, columns, text) {
  const tr = document.createElement('tr');
  const td = cell(tr, '');
  td.colSpan = columns;
  td.textContent = text;
  body.appendChild(tr);
}

// The file rows of the open torrent, made once and updated in place, so a priority list
// someone is choosing in is not replaced under them by the next refresh.
let fileRows = [];

function renderFiles(t) {
  const body = $('details-files').tBodies[0];
  const files = t.files || [];
  if (fileRows.length !== files.length || body.dataset.id !== String(t.id)) {
    body.dataset.id = t.id;
    body.replaceChildren();
    fileRows = files.map((f, i) => {
      const tr = document.createElement('tr');
      const name = cell(tr, '');
      const size = cell(tr, 'num');
      const done = cell(tr, 'num');
      const choice = document.createElement('select');
      choice.className = 'priority';
      choice.setAttribute('aria-label', `Priority of ${f.name}`);
      for (const p of PRIORITIES) {
        const o = document.createElement('option');
        o.value = p;
        o.textContent = p;
        choice.appendChild(o);
      }
      choice.addEventListener('change', () => setPriority(t.id, i, choice.value));
      cell(tr, '').appendChild(choice);
      body.appendChild(tr);
      return { tr, name, size, done, choice };
    });
    if (files.length === 0) emptyRow(body, 4, 'Not known yet (the metadata is still coming).');
  }
  files.forEach((f, i) => {
    const r = fileRows[i];
    const stats = (t.fileStats || [])[i] || {};
    const pct = f.length > 0 ? Math.floor((f.bytesCompleted / f.length) * 1000) / 10 : 100;
    const priority = stats.wanted === false ? 'skip' : PRIORITIES[(stats.priority || 0) + 2];
    r.name.textContent = f.name;
    r.size.textContent = bytes(f.length);
    r.done.textContent = `${pct}%`;
    // What the daemon holds, for the eye and for tests; the list itself is left alone
    // while it has the focus.
    r.tr.dataset.priority = priority;
    if (document.activeElement !== r.choice) r.choice.value = priority;
  });
}

// One file's choice as torrent-set arguments.
function setPriority(id, index, priority) {
  const args = { ids: [id] };
  if (priority === 'skip') {
    args['files-unwanted'] = [index];
  } else {
    args['files-wanted'] = [index];
    args[`priority-${priority}`] = [index];
  }
  act('Setting the file priority', () => rpc('torrent-set', args));
}

function renderPeers(peers) {
  const body = $('details-peers').tBodies[0];
  body.replaceChildren();
  for (const p of peers) {
    const tr = document.createElement('tr');
    const address = p.address.includes(':') ? `[${p.address}]:${p.port}` : `${p.address}:${p.port}`;
    for (const [text, cls] of [[address, ''], [p.clientName || '?', ''], [p.flagStr, ''],
      [`${Math.floor(p.progress * 1000) / 10}%`, 'num'], [rate(p.rateToClient), 'num'],
      [rate(p.rateToPeer), 'num']]) {
      cell(tr, cls).textContent = text;
    }
    body.appendChild(tr);
  }
  if (peers.length === 0) emptyRow(body, 6, 'No peer connected.');
}

// The torrent's own settings into its form, unless someone is editing the form.
function renderTorrentSettings(t) {
  const form = $('torrent-form');
  if (form.contains(document.activeElement) && form.dataset.id === String(t.id)) return;
  form.dataset.id = t.id;
  $('t-labels').value = (t.labels || []).join(', ');
  $('t-down').value = t.downloadLimit;
  $('t-down-on').checked = t.downloadLimited;
  $('t-up').value = t.uploadLimit;
  $('t-up-on').checked = t.uploadLimited;
  $('t-ratio-mode').value = String(t.seedRatioMode);
  $('t-ratio').value = t.seedRatioLimit;
  $('t-idle-mode').value = String(t.seedIdleMode);
  $('t-idle').value = t.seedIdleLimit;
}

async function applyTorrentSettings() {
  const id = Number($('torrent-form').dataset.id);
  const labels = $('t-labels').value.split(',').map((l) => l.trim()).filter((l) => l.length > 0);
  const ratio = Number($('t-ratio').value);
  if (!Number.isFinite(ratio) || ratio < 0) throw new Error('a ratio is a number ≥ 0');
  await rpc('torrent-set', {
    ids: [id],
    labels,
    downloadLimit: limitValue('t-down'),
    downloadLimited: $('t-down-on').checked,
    uploadLimit: limitValue('t-up'),
    uploadLimited: $('t-up-on').checked,
    seedRatioMode: Number($('t-ratio-mode').value),
    seedRatioLimit: ratio,
    seedIdleMode: Number($('t-idle-mode').value),
    seedIdleLimit: limitValue('t-idle'),
  });
  $('torrent-saved').textContent = 'Saved.';
  setTimeout(() => { $('torrent-saved').textContent = ''; }, 3000);
}

async function openDetails(id) {
  detailsId = id;
  $('details').hidden = false;
  await refreshDetails();
  $('details-close').focus();
}

async function refreshDetails() {
  if (detailsId === null) return;
  const { torrents } = await rpc('torrent-get', { ids: [detailsId], fields: DETAIL_FIELDS });
  if (torrents.length === 0) {
    closeDetails();
    return;
  }
  renderDetails(torrents[0]);
}

function closeDetails() {
  detailsId = null;
  fileRows = [];
  $('details-files').tBodies[0].dataset.id = '';
  $('details').hidden = true;
}

function askRemove(id, name) {
  removing = { id, name };
  $('remove-name').textContent = name;
  $('remove-delete').checked = false;
  // Escape closes the dialog without a button: no stale "remove" from last time.
  $('remove-dialog').returnValue = '';
  $('remove-dialog').showModal();
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const { torrents } = await rpc('torrent-get', { fields: LIST_FIELDS });
    renderList(torrents);
    await refreshDetails();
    // A failed refresh's error goes once the daemon answers again.
    if ($('error-text').textContent.startsWith('Refresh')) clearError();
  } catch (e) {
    showError(`Refresh failed: ${e.message}`);
  } finally {
    refreshing = false;
  }
}

// A file's bytes in base64, as torrent-add's `metainfo` wants them.
async function base64Of(file) {
  const data = new Uint8Array(await file.arrayBuffer());
  let binary = '';
  for (let i = 0; i < data.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

// The session's settings: each form field and its session-get/session-set key.
const SESSION_FIELDS = [
  ['limit-down', 'speed-limit-down'], ['limit-down-on', 'speed-limit-down-enabled'],
  ['limit-up', 'speed-limit-up'], ['limit-up-on', 'speed-limit-up-enabled'],
  ['ratio', 'seedRatioLimit'], ['ratio-on', 'seedRatioLimited'],
  ['idle', 'idle-seeding-limit'], ['idle-on', 'idle-seeding-limit-enabled'],
  ['dq', 'download-queue-size'], ['dq-on', 'download-queue-enabled'],
  ['sq', 'seed-queue-size'], ['sq-on', 'seed-queue-enabled'],
  ['incomplete', 'incomplete-dir'], ['incomplete-on', 'incomplete-dir-enabled'],
];

async function loadLimits() {
  const s = await rpc('session-get');
  for (const [id, key] of SESSION_FIELDS) {
    if ($(id).type === 'checkbox') $(id).checked = s[key];
    else $(id).value = s[key];
  }
}

// The form's values as session-set arguments, each checked.
function sessionArgs() {
  const args = {};
  for (const [id, key] of SESSION_FIELDS) {
    const input = $(id);
    if (input.type === 'checkbox') args[key] = input.checked;
    else if (input.type === 'text') args[key] = input.value.trim();
    else if (id === 'ratio') {
      const r = Number(input.value);
      if (!Number.isFinite(r) || r < 0) throw new Error('a ratio is a number ≥ 0');
      args[key] = r;
    } else args[key] = limitValue(id);
  }
  // An empty directory cannot be turned on; left off, it is not sent.
  if (!args['incomplete-dir-enabled'] && args['incomplete-dir'] === '') delete args['incomplete-dir'];
  return args;
}

function limitValue(id) {
  const v = Number($(id).value);
  if (!Number.isInteger(v) || v < 0) throw new Error('a limit is a whole number ≥ 0');
  return v;
}

function setup() {
  $('error-close').addEventListener('click', clearError);
  $('add-file').addEventListener('change', (ev) => {
    const input = ev.target;
    const files = Array.from(input.files);
    act('Adding the torrent', async () => {
      for (const file of files) {
        await rpc('torrent-add', { metainfo: await base64Of(file), paused: $('add-paused').checked });
      }
      input.value = '';
    });
  });
  $('add-magnet-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const link = $('add-magnet').value.trim();
    act('Adding the magnet link', async () => {
      if (!link.startsWith('magnet:')) throw new Error('a magnet link starts with "magnet:"');
      await rpc('torrent-add', { filename: link, paused: $('add-paused').checked });
      $('add-magnet').value = '';
    });
  });
  $('limits-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    act('Setting the session', async () => {
      await rpc('session-set', sessionArgs());
      await loadLimits();
      $('limits-saved').textContent = 'Saved.';
      setTimeout(() => { $('limits-saved').textContent = ''; }, 3000);
    });
  });
  $('remove-dialog').addEventListener('close', () => {
    const t = removing;
    removing = null;
    if (!t || $('remove-dialog').returnValue !== 'remove') return;
    const deleteData = $('remove-delete').checked;
    act('Removing the torrent', () => rpc('torrent-remove', { ids: [t.id], 'delete-local-data': deleteData }));
  });
  $('details-close').addEventListener('click', closeDetails);
  $('torrent-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    // The form keeps its values until the daemon's come back.
    document.activeElement.blur();
    act('Setting the torrent', applyTorrentSettings);
  });
  fetchSessionId().then(() => {
    act('Reading the speed limits', loadLimits);
    setInterval(refresh, REFRESH_MS);
  });
}

document.addEventListener('DOMContentLoaded', setup);

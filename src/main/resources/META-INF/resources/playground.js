// Prefixgate playground: plain JavaScript, no framework, no build step, nothing from another origin.
// It talks to the gateway's own API (docs/playground.md lists every call). Keys live in the two
// variables below and nowhere else: no localStorage, no sessionStorage, no cookies.
'use strict';

(() => {
  let tenantKey = '';
  let adminKey = '';
  /** The caller's models, as GET /v1/models lists them. */
  let models = [];
  /** Versions of each adapter of the admin view's tenant, by name (from the admin API). */
  let adminVersions = {};
  /** The admin view's tenant. */
  let adminTenant = '';
  /** The chat so far: OpenAI messages, without the system message. */
  let history = [];
  let chatAbort = null;
  /** Bumped to stop an older job's poller when a new retrain starts. */
  let jobRun = 0;

  const $ = (id) => document.getElementById(id);

  // ---- HTTP ------------------------------------------------------------------------------------

  /** A failed call: the server's error.message when it sent one, else the HTTP status. */
  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  async function errorOf(res) {
    const text = await res.text().catch(() => '');
    try {
      const j = JSON.parse(text);
      if (j && j.error && typeof j.error.message === 'string') {
        return new ApiError(res.status, j.error.message, j);
      }
    } catch (ignored) {
      // not JSON: fall through
    }
    const brief = text.replace(/\s+/g, ' ').trim().slice(0, 300);
    return new ApiError(res.status, `HTTP ${res.status} ${res.statusText}${brief ? ': ' + brief : ''}`);
  }

  /** Relative paths: the page works behind a proxy that mounts the gateway under a prefix. */
  async function call(method, path, { key, json, body, contentType, signal } = {}) {
    const headers = {};
    if (key) headers.Authorization = 'Bearer ' + key;
    let payload = body;
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(json);
    } else if (contentType) {
      headers['Content-Type'] = contentType;
    }
    let res;
    try {
      res = await fetch(path, { method, headers, body: payload, signal, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'The gateway cannot be reached: ' + e.message);
    }
    if (!res.ok) throw await errorOf(res);
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }

  const admin = (method, path, options = {}) => call(method, 'admin/' + path, { ...options, key: adminKey });
  const seg = encodeURIComponent;

  /**
   * POST /v1/chat/completions with stream: true, read as server-sent events. onDelta gets each piece
   * of content as it arrives. Resolves with the text and the timings; throws ApiError when the
   * request is refused.
   */
  async function streamChat({ model, messages, temperature, maxTokens, signal, onDelta }) {
    const body = {
      model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
      temperature,
      max_tokens: maxTokens,
    };
    const t0 = performance.now();
    let res;
    try {
      res = await fetch('v1/chat/completions', {
        method: 'POST',
        headers: {
          Authorization: 'Bearer ' + tenantKey,
          'Content-Type': 'application/json',
          Accept: 'text/event-stream',
        },
        body: JSON.stringify(body),
        signal,
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'The gateway cannot be reached: ' + e.message);
    }
    if (!res.ok) throw await errorOf(res);
    const r = { t0, tFirst: null, tLast: null, tEnd: null, chunks: 0, usage: null, finish: null, model: null, text: '', error: null };
    const dispatch = (data) => {
      if (data === '[DONE]') return;
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch (e) {
        r.error = 'The stream sent something that is not JSON: ' + data.slice(0, 200);
        return;
      }
      if (chunk.model) r.model = chunk.model;
      if (chunk.error) r.error = chunk.error.message || String(chunk.error);
      for (const c of chunk.choices || []) {
        const piece = c.delta && typeof c.delta.content === 'string' ? c.delta.content : '';
        if (piece) {
          const now = performance.now();
          if (r.tFirst === null) r.tFirst = now;
          r.tLast = now;
          r.chunks++;
          r.text += piece;
          onDelta(piece);
        }
        if (c.finish_reason) r.finish = c.finish_reason;
      }
      if (chunk.usage) r.usage = chunk.usage;
    };
    // The SSE format, line by line: "data:" lines gather until an empty line ends the event.
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let data = [];
    const lines = (text) => {
      buffer += text;
      const all = buffer.split('\n');
      buffer = all.pop();
      for (let line of all) {
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length) dispatch(data.join('\n'));
          data = [];
        } else if (!line.startsWith(':')) {
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          let value = i < 0 ? '' : line.slice(i + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'data') data.push(value);
        }
      }
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      lines(decoder.decode(value, { stream: true }));
    }
    lines(decoder.decode() + '\n\n');
    r.tEnd = performance.now();
    return r;
  }

  /** TTFT, tokens and tokens/s of a finished stream, formatted for the page. */
  function timings(r) {
    const tokens = r.usage && Number.isFinite(r.usage.completion_tokens) ? r.usage.completion_tokens : r.chunks;
    // Decode speed: the tokens after the first, over the time from the first piece to the last.
    const span = r.tFirst !== null && r.tLast !== null ? (r.tLast - r.tFirst) / 1000 : 0;
    const tps = tokens > 1 && span > 0 ? (tokens - 1) / span : null;
    return {
      ttft: r.tFirst === null ? '–' : String(Math.round(r.tFirst - r.t0)),
      tokens: String(tokens),
      tps: tps === null ? '–' : tps.toFixed(1),
      total: String(Math.round(r.tEnd - r.t0)),
      finish: r.finish || '–',
    };
  }

  // ---- small DOM helpers -----------------------------------------------------------------------

  function say(el, text, kind) {
    const node = typeof el === 'string' ? $(el) : el;
    node.textContent = text || '';
    node.classList.toggle('error', kind === 'error');
    node.classList.toggle('ok', kind === 'ok');
  }

  const sayError = (el, e) => say(el, e instanceof ApiError ? e.message : String(e && e.message ? e.message : e), 'error');

  function option(select, value, label) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = label;
    select.appendChild(o);
    return o;
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  const number = (id, fallback) => {
    const v = Number($(id).value);
    return $(id).value === '' || !Number.isFinite(v) ? fallback : v;
  };

  // ---- tabs ------------------------------------------------------------------------------------

  function show(view) {
    for (const tab of document.querySelectorAll('.tab')) {
      tab.setAttribute('aria-selected', String(tab.dataset.view === view));
    }
    for (const v of ['chat', 'compare', 'admin']) $('view-' + v).hidden = v !== view;
  }

  // ---- models ----------------------------------------------------------------------------------

  async function loadModels() {
    tenantKey = $('tenant-key').value.trim();
    if (!tenantKey) {
      models = [];
      fillModelPickers();
      say('models-msg', 'Paste a tenant API key first.', 'error');
      return;
    }
    say('models-msg', 'loading…');
    try {
      const list = await call('GET', 'v1/models', { key: tenantKey });
      models = list.data || [];
      fillModelPickers();
      const owner = models.find((m) => m.owned_by && m.parent)?.owned_by;
      say('models-msg', `${models.length} model${models.length === 1 ? '' : 's'}` + (owner ? ` of tenant ${owner}` : ''), 'ok');
    } catch (e) {
      models = [];
      fillModelPickers();
      sayError('models-msg', e);
    }
  }

  /** Every choice: each model (its active version) and, for adapters, each known version pinned. */
  function modelChoices() {
    const out = [];
    for (const m of models) {
      if (!m.parent) {
        out.push({ value: m.id, label: `${m.id} (base model)` });
        continue;
      }
      out.push({ value: m.id, label: `${m.id} (active: v${m.version})` });
      for (const v of versionsOf(m)) out.push({ value: `${m.id}@${v.version}`, label: `${m.id}@${v.version} (${v.status})` });
    }
    return out;
  }

  /** Known versions of a model: from the admin view when it has this tenant, else the active one. */
  function versionsOf(m) {
    const known = m.owned_by === adminTenant ? adminVersions[m.id] : null;
    if (known && known.length) {
      return known.filter((v) => v.status !== 'RETIRED').sort((a, b) => b.version - a.version);
    }
    return [{ version: m.version, status: 'ACTIVE' }];
  }

  function fillModelPickers() {
    const chat = $('chat-model');
    const before = chat.value;
    chat.replaceChildren();
    for (const m of models) option(chat, m.id, m.parent ? `${m.id}${m.default ? ' (default)' : ''}` : `${m.id} (base model)`);
    if (models.some((m) => m.id === before)) chat.value = before;
    else {
      const d = models.find((m) => m.default);
      if (d) chat.value = d.id;
    }
    fillVersions();
    const choices = modelChoices();
    const selects = [$('cmp-model-a'), $('cmp-model-b')];
    const adapters = choices.filter((c) => !c.value.includes('@'));
    selects.forEach((s, i) => {
      const prev = s.value;
      s.replaceChildren();
      for (const c of choices) option(s, c.value, c.label);
      if (choices.some((c) => c.value === prev)) s.value = prev;
      else if (adapters[i]) s.value = adapters[i].value;
      else if (adapters.length) s.value = adapters[adapters.length - 1].value;
    });
  }

  function fillVersions() {
    const sel = $('chat-version');
    const prev = sel.value;
    sel.replaceChildren();
    const m = models.find((x) => x.id === $('chat-model').value);
    if (!m) return;
    if (!m.parent) {
      option(sel, m.id, '–');
      return;
    }
    option(sel, m.id, `active (v${m.version})`);
    for (const v of versionsOf(m)) option(sel, `${m.id}@${v.version}`, `v${v.version} only (${v.status})`);
    if ([...sel.options].some((o) => o.value === prev)) sel.value = prev;
  }

  // ---- chat ------------------------------------------------------------------------------------

  function bubble(role, text) {
    const div = el('div', undefined, 'msg-' + role);
    div.appendChild(el('span', role === 'user' ? 'you' : 'assistant', 'who'));
    const body = el('span', text, 'text');
    div.appendChild(body);
    $('chat-log').appendChild(div);
    div.scrollIntoView({ block: 'end' });
    return { div, body };
  }

  function setStats(prefix, t) {
    $(prefix + '-ttft').textContent = t.ttft;
    $(prefix + '-tokens').textContent = t.tokens;
    $(prefix + '-tps').textContent = t.tps;
    $(prefix + '-total').textContent = t.total;
    $(prefix + '-finish').textContent = t.finish;
  }

  async function sendChat(ev) {
    ev.preventDefault();
    if (chatAbort) return;
    const prompt = $('chat-prompt').value;
    const model = $('chat-version').value || $('chat-model').value;
    say('chat-msg', '');
    if (!tenantKey) {
      say('chat-msg', 'Paste a tenant API key and load the models first.', 'error');
      return;
    }
    if (!prompt.trim()) {
      say('chat-msg', 'Type a message first.', 'error');
      return;
    }
    const messages = [];
    const system = $('chat-system').value.trim();
    if (system) messages.push({ role: 'system', content: system });
    messages.push(...history, { role: 'user', content: prompt });
    bubble('user', prompt);
    const answer = bubble('assistant', '');
    answer.div.classList.add('streaming');
    const stats = $('chat-stats');
    stats.dataset.state = 'streaming';
    setStats('chat', { ttft: '–', tokens: '–', tps: '–', total: '–', finish: '–' });
    $('chat-stat-model').textContent = model || '(default)';
    chatAbort = new AbortController();
    $('chat-send').disabled = true;
    $('chat-stop').disabled = false;
    let r;
    try {
      r = await streamChat({
        model: model || undefined,
        messages,
        temperature: number('chat-temperature', 0),
        maxTokens: number('chat-max-tokens', 64),
        signal: chatAbort.signal,
        onDelta: (piece) => {
          answer.body.textContent += piece;
          answer.div.scrollIntoView({ block: 'end' });
        },
      });
    } catch (e) {
      answer.div.classList.remove('streaming');
      answer.div.classList.add('failed');
      if (e.name === 'AbortError') {
        say('chat-msg', 'Stopped.');
        stats.dataset.state = 'stopped';
      } else {
        sayError('chat-msg', e);
        stats.dataset.state = 'error';
      }
      return;
    } finally {
      chatAbort = null;
      $('chat-send').disabled = false;
      $('chat-stop').disabled = true;
    }
    answer.div.classList.remove('streaming');
    setStats('chat', timings(r));
    if (r.model) $('chat-stat-model').textContent = r.model;
    if (r.error) {
      answer.div.classList.add('failed');
      sayError('chat-msg', r.error);
      stats.dataset.state = 'error';
      return;
    }
    history.push({ role: 'user', content: prompt }, { role: 'assistant', content: r.text });
    $('chat-prompt').value = '';
    stats.dataset.state = 'done';
  }

  function clearChat() {
    if (chatAbort) chatAbort.abort();
    history = [];
    $('chat-log').replaceChildren();
    $('chat-stats').dataset.state = 'idle';
    setStats('chat', { ttft: '–', tokens: '–', tps: '–', total: '–', finish: '–' });
    $('chat-stat-model').textContent = '–';
    say('chat-msg', '');
  }

  // ---- side by side ----------------------------------------------------------------------------

  async function runPane(pane, model, prompt) {
    const out = pane.querySelector('.out');
    const msg = pane.querySelector('.msg');
    const put = (cls, v) => { pane.querySelector('.' + cls).textContent = v; };
    out.textContent = '';
    say(msg, '');
    for (const c of ['ttft', 'tokens', 'tps', 'finish']) put(c, '–');
    pane.dataset.state = 'streaming';
    try {
      const r = await streamChat({
        model,
        messages: [{ role: 'user', content: prompt }],
        temperature: number('cmp-temperature', 0),
        maxTokens: number('cmp-max-tokens', 64),
        onDelta: (piece) => { out.textContent += piece; },
      });
      const t = timings(r);
      for (const c of ['ttft', 'tokens', 'tps', 'finish']) put(c, t[c]);
      if (r.error) {
        sayError(msg, r.error);
        pane.dataset.state = 'error';
      } else {
        say(msg, r.model ? `answered by ${r.model}` : '', 'ok');
        pane.dataset.state = 'done';
      }
    } catch (e) {
      sayError(msg, e);
      pane.dataset.state = 'error';
    }
  }

  async function runCompare(ev) {
    ev.preventDefault();
    const panes = [$('cmp-a'), $('cmp-b')];
    if (panes.some((p) => p.dataset.state === 'streaming')) return;
    if (!tenantKey) {
      for (const p of panes) {
        say(p.querySelector('.msg'), 'Paste a tenant API key and load the models first.', 'error');
        p.dataset.state = 'error';
      }
      return;
    }
    const prompt = $('cmp-prompt').value;
    $('cmp-run').disabled = true;
    // Both requests leave at once and stream side by side, in the same engine batch.
    await Promise.all([
      runPane(panes[0], $('cmp-model-a').value, prompt),
      runPane(panes[1], $('cmp-model-b').value, prompt),
    ]);
    $('cmp-run').disabled = false;
  }

  // ---- admin -----------------------------------------------------------------------------------

  async function connectAdmin() {
    adminKey = $('admin-key').value.trim();
    if (!adminKey) {
      say('adm-connect-msg', 'Paste the admin key first.', 'error');
      return;
    }
    say('adm-connect-msg', 'connecting…');
    try {
      await loadTenants();
      say('adm-connect-msg', 'connected', 'ok');
    } catch (e) {
      sayError('adm-connect-msg', e);
    }
  }

  async function loadTenants(select) {
    const list = await admin('GET', 'tenants');
    const sel = $('adm-tenant');
    const prev = select || sel.value;
    sel.replaceChildren();
    list.sort((a, b) => a.id.localeCompare(b.id));
    for (const t of list) option(sel, t.id, t.name && t.name !== t.id ? `${t.id} (${t.name})` : t.id);
    if (list.some((t) => t.id === prev)) sel.value = prev;
    await loadTenant();
  }

  async function loadTenant() {
    adminTenant = $('adm-tenant').value;
    adminVersions = {};
    $('adm-versions').querySelector('tbody').replaceChildren();
    $('adm-datasets').replaceChildren();
    $('rt-dataset').replaceChildren();
    say('adm-tenant-info', '');
    if (!adminTenant) return;
    try {
      const t = await admin('GET', `tenants/${seg(adminTenant)}`);
      say('adm-tenant-info', `default adapter: ${t.defaultAdapter || 'none'}; base model: ${t.allowBase ? 'allowed' : 'not allowed'}`);
    } catch (e) {
      sayError('adm-tenant-info', e);
    }
    await Promise.all([loadVersions(), loadDatasets()]);
  }

  async function loadVersions() {
    const body = $('adm-versions').querySelector('tbody');
    try {
      const list = await admin('GET', `tenants/${seg(adminTenant)}/adapters`);
      adminVersions = {};
      for (const v of list) (adminVersions[v.name] ||= []).push(v);
      body.replaceChildren();
      const names = Object.keys(adminVersions).sort();
      for (const name of names) {
        const versions = adminVersions[name].sort((a, b) => b.version - a.version);
        const active = versions.find((v) => v.status === 'ACTIVE');
        for (const v of versions) {
          const tr = document.createElement('tr');
          tr.dataset.adapter = v.name;
          tr.dataset.version = String(v.version);
          tr.dataset.status = v.status;
          tr.className = 'status-' + v.status.toLowerCase();
          for (const text of [v.name, 'v' + v.version, v.status, String(v.numVirtualTokens), v.source || '',
            (v.digest || '').slice(0, 12), (v.createdAt || '').replace('T', ' ').replace(/\..*$/, '')]) {
            tr.appendChild(el('td', text));
          }
          const td = el('td');
          if (v.status !== 'ACTIVE') {
            const b = el('button', active && v.version < active.version ? 'roll back' : 'activate', 'activate');
            b.type = 'button';
            b.addEventListener('click', () => activate(v.name, v.version));
            td.appendChild(b);
          }
          if (v.status === 'REGISTERED') {
            const b = el('button', 'retire', 'retire');
            b.type = 'button';
            b.addEventListener('click', () => retire(v.name, v.version));
            td.appendChild(b);
          }
          tr.appendChild(td);
          body.appendChild(tr);
        }
      }
      say('adm-versions-msg', names.length ? '' : 'This tenant has no adapters yet.');
    } catch (e) {
      sayError('adm-versions-msg', e);
    }
    fillModelPickers();
  }

  async function activate(name, version) {
    say('adm-versions-msg', `activating ${name} v${version}…`);
    try {
      const v = await admin('POST', `tenants/${seg(adminTenant)}/adapters/${seg(name)}/versions/${version}/activate`);
      await afterRegistryChange();
      say('adm-versions-msg', `${v.name} v${v.version} is ${v.status}: the next request uses it.`, 'ok');
    } catch (e) {
      sayError('adm-versions-msg', e);
    }
  }

  async function retire(name, version) {
    try {
      await admin('DELETE', `tenants/${seg(adminTenant)}/adapters/${seg(name)}/versions/${version}`);
      await afterRegistryChange();
      say('adm-versions-msg', `${name} v${version} is retired.`, 'ok');
    } catch (e) {
      sayError('adm-versions-msg', e);
    }
  }

  /** The versions table and the model pickers, after an upload or an activation. */
  async function afterRegistryChange() {
    await loadVersions();
    if (tenantKey) await loadModels();
  }

  async function createTenant(ev) {
    ev.preventDefault();
    const id = $('adm-new-id').value.trim();
    const req = { id, allowBase: $('adm-new-base').checked };
    const name = $('adm-new-name').value.trim();
    if (name) req.name = name;
    $('adm-newkey').hidden = true;
    say('adm-create-msg', 'creating…');
    try {
      const created = await admin('POST', 'tenants', { json: req });
      $('adm-newkey-value').textContent = created.apiKey;
      $('adm-newkey').hidden = false;
      say('adm-create-msg', `tenant ${created.tenant.id} created`, 'ok');
      await loadTenants(created.tenant.id);
    } catch (e) {
      sayError('adm-create-msg', e);
    }
  }

  async function useNewKey() {
    $('tenant-key').value = $('adm-newkey-value').textContent;
    await loadModels();
  }

  /** Picks PEFT's two files out of a file list: by their names, else by their extensions. */
  function peftFiles(files) {
    const list = [...files];
    const base = (f) => f.name.split('/').pop();
    const cfg = list.find((f) => base(f) === 'adapter_config.json') || list.find((f) => base(f).endsWith('.json'));
    const model = list.find((f) => base(f) === 'adapter_model.safetensors') || list.find((f) => base(f).endsWith('.safetensors'));
    return { cfg, model };
  }

  async function upload(ev) {
    ev.preventDefault();
    const name = $('up-name').value.trim();
    if (!adminTenant) return say('adm-upload-msg', 'Connect with the admin key and choose a tenant first.', 'error');
    if (!name) return say('adm-upload-msg', 'Give the adapter a name.', 'error');
    const form = new FormData();
    const archive = $('up-archive').files[0];
    const folder = $('up-folder').files;
    const files = $('up-files').files;
    if (archive) {
      form.append('archive', archive, archive.name);
    } else {
      const { cfg, model } = peftFiles(files.length ? files : folder);
      if (!cfg && !model) return say('adm-upload-msg', 'Choose the two PEFT files, their folder or an archive.', 'error');
      // Whatever is there goes to the server, which says what is missing or wrong.
      if (cfg) form.append('adapter_config', cfg, 'adapter_config.json');
      if (model) form.append('adapter_model', model, 'adapter_model.safetensors');
    }
    const activateIt = $('up-activate').checked;
    say('adm-upload-msg', 'uploading…');
    $('up-submit').disabled = true;
    try {
      const v = await admin('POST', `tenants/${seg(adminTenant)}/adapters/${seg(name)}?activate=${activateIt}`, { body: form });
      for (const id of ['up-files', 'up-folder', 'up-archive']) $(id).value = '';
      await afterRegistryChange();
      say('adm-upload-msg', `${v.name} v${v.version}: ${v.status}, ${v.numVirtualTokens} virtual tokens, digest ${v.digest.slice(0, 12)}`, 'ok');
    } catch (e) {
      sayError('adm-upload-msg', e);
    } finally {
      $('up-submit').disabled = false;
    }
  }

  async function loadDatasets(select) {
    const list = await admin('GET', `tenants/${seg(adminTenant)}/datasets`).catch((e) => {
      sayError('adm-dataset-msg', e);
      return [];
    });
    const ul = $('adm-datasets');
    const sel = $('rt-dataset');
    const prev = select || sel.value;
    ul.replaceChildren();
    sel.replaceChildren();
    for (const d of list) {
      ul.appendChild(el('li', `${d.name}: ${d.records} records (${d.id})`));
      option(sel, d.id, `${d.name} (${d.records} records)`);
    }
    if (list.some((d) => d.id === prev)) sel.value = prev;
  }

  async function uploadDataset(ev) {
    ev.preventDefault();
    const file = $('ds-file').files[0];
    if (!adminTenant) return say('adm-dataset-msg', 'Connect with the admin key and choose a tenant first.', 'error');
    if (!file) return say('adm-dataset-msg', 'Choose a JSONL file.', 'error');
    const name = $('ds-name').value.trim() || file.name.replace(/\.[^.]*$/, '');
    say('adm-dataset-msg', 'uploading…');
    try {
      const d = await admin('POST', `tenants/${seg(adminTenant)}/datasets?name=${seg(name)}`, {
        body: file,
        contentType: 'application/x-ndjson',
      });
      await loadDatasets(d.id);
      say('adm-dataset-msg', `data set ${d.name}: ${d.records} records`, 'ok');
    } catch (e) {
      sayError('adm-dataset-msg', e);
    }
  }

  async function startRetrain(ev) {
    ev.preventDefault();
    if (!adminTenant) return say('adm-retrain-msg', 'Connect with the admin key and choose a tenant first.', 'error');
    const hyperParameters = {};
    const steps = number('rt-steps', null);
    const tokens = number('rt-tokens', null);
    if (steps !== null) hyperParameters.maxSteps = steps;
    if (tokens !== null) hyperParameters.numVirtualTokens = tokens;
    const req = {
      adapter: $('rt-adapter').value.trim(),
      datasetId: $('rt-dataset').value || null,
      hyperParameters,
      activate: $('rt-activate').value,
    };
    say('adm-retrain-msg', 'requesting…');
    try {
      const job = await admin('POST', `tenants/${seg(adminTenant)}/retrain`, { json: req });
      say('adm-retrain-msg', 'retrain requested', 'ok');
      follow(job, $('rt-probe').value);
    } catch (e) {
      sayError('adm-retrain-msg', e);
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /**
   * Polls GET /admin/jobs/{id} each second until the job is final and its version registered,
   * then asks that version the probe prompt (with the tenant key) until it answers.
   */
  async function follow(job, probe) {
    const run = ++jobRun;
    const box = $('job');
    box.hidden = false;
    $('job-id').textContent = job.id;
    $('job-answer').textContent = '';
    const tenant = job.tenant;
    const render = (j) => {
      box.dataset.state = j.state;
      $('job-state').textContent = j.state;
      $('job-progress').value = j.progress || 0;
      $('job-step').textContent = j.step ?? '–';
      $('job-loss').textContent = j.loss === null || j.loss === undefined ? '–' : Number(j.loss).toFixed(4);
      $('job-version').textContent = j.adapterVersion ? 'v' + j.adapterVersion : '–';
      $('job-reason').textContent = j.reason || '';
    };
    render(job);
    const final = (s) => s === 'succeeded' || s === 'not_activated' || s === 'failed';
    for (;;) {
      await sleep(1000);
      if (run !== jobRun) return;
      try {
        job = await admin('GET', `jobs/${seg(job.id)}`);
      } catch (e) {
        sayError('adm-retrain-msg', e);
        continue;
      }
      render(job);
      if (job.state === 'failed') return;
      if (final(job.state) && job.adapterVersion) break;
    }
    if (tenant === adminTenant) await afterRegistryChange();
    const model = `${job.adapter}@${job.adapterVersion}`;
    if (!tenantKey) {
      $('job-answer').textContent = `(paste an API key of ${tenant} above to ask ${model})`;
      return;
    }
    box.dataset.state = 'asking';
    $('job-answer').textContent = `asking ${model}…`;
    // Every replica registers the version from its Kafka event: a 404 first is normal.
    for (let attempt = 0; attempt < 60 && run === jobRun; attempt++) {
      try {
        const r = await call('POST', 'v1/chat/completions', {
          key: tenantKey,
          json: { model, temperature: 0, max_tokens: 64, messages: [{ role: 'user', content: probe }] },
        });
        $('job-answer').textContent = r.choices[0].message.content;
        box.dataset.state = 'answered';
        return;
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 404) {
          $('job-answer').textContent = e.message;
          box.dataset.state = 'error';
          return;
        }
      }
      await sleep(1000);
    }
    $('job-answer').textContent = `${model} is not served for this key (is it a key of ${tenant}?)`;
    box.dataset.state = 'error';
  }

  // ---- wiring ----------------------------------------------------------------------------------

  function init() {
    for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => show(tab.dataset.view));
    $('load-models').addEventListener('click', loadModels);
    $('tenant-key').addEventListener('keydown', (e) => { if (e.key === 'Enter') loadModels(); });
    $('chat-model').addEventListener('change', fillVersions);
    $('chat-form').addEventListener('submit', sendChat);
    $('chat-prompt').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) $('chat-form').requestSubmit();
    });
    $('chat-stop').addEventListener('click', () => chatAbort && chatAbort.abort());
    $('chat-clear').addEventListener('click', clearChat);
    $('cmp-form').addEventListener('submit', runCompare);
    $('admin-key').addEventListener('keydown', (e) => { if (e.key === 'Enter') connectAdmin(); });
    $('adm-connect').addEventListener('click', connectAdmin);
    $('adm-refresh').addEventListener('click', () => loadTenants().catch((e) => sayError('adm-connect-msg', e)));
    $('adm-tenant').addEventListener('change', loadTenant);
    $('adm-create-form').addEventListener('submit', createTenant);
    $('adm-use-key').addEventListener('click', useNewKey);
    $('adm-upload-form').addEventListener('submit', upload);
    $('adm-dataset-form').addEventListener('submit', uploadDataset);
    $('adm-retrain-form').addEventListener('submit', startRetrain);
    document.body.dataset.ready = 'true';
  }

  init();
})();

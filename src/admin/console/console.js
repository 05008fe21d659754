// tmm admin console: plain JavaScript, no build step. All data is rendered with textContent (never as HTML).
'use strict';
(() => {
  const $ = (sel) => document.querySelector(sel);
  const state = { auth: sessionStorage.getItem('tmm.auth') || '', session: null, dead: { offset: 0, limit: 50, filter: { status: 'NEW' } }, outbox: { offset: 0, limit: 50 }, audit: { offset: 0, limit: 50 } };

  /** h('div', { class: 'x', onclick }, child, 'text') → element. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }
  const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '—');
  const fmtAge = (ms) => {
    if (ms === null || ms === undefined) return '—';
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  };
  const fmtNum = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString());
  const badge = (s) => h('span', { class: `badge ${s}` }, s);

  function toast(text, bad) {
    const t = h('div', { class: `toast${bad ? ' bad' : ''}`, 'data-testid': 'toast' }, text);
    $('#toasts').append(t);
    setTimeout(() => t.remove(), bad ? 7000 : 4000);
  }

  function confirmAction(title, text, okLabel) {
    const d = $('#confirm');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-ok').textContent = okLabel || 'Confirm';
    d.returnValue = '';
    d.showModal();
    return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || `HTTP ${status}`);
      this.status = status;
      this.code = body && body.error && body.error.code;
    }
  }

  async function api(method, path, body, retried) {
    const headers = { accept: 'application/json' };
    if (state.auth) headers.authorization = state.auth;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (method !== 'GET' && state.session && state.session.csrfToken) headers['x-csrf-token'] = state.session.csrfToken;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit' });
    const data = res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text();
    if (res.status === 401) {
      showLogin(state.auth ? 'Your credentials were refused; sign in again.' : '');
      throw new ApiError(401, data);
    }
    if (res.status === 403 && data && data.error && data.error.code === 'TMM_CSRF' && !retried) {
      // The server restarted (new CSRF key): fetch a fresh token once.
      state.session = await api('GET', '/api/session');
      return api(method, path, body, true);
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  // ---------- sign-in ----------
  function showLogin(message) {
    state.session = null;
    $('#login').hidden = false;
    $('#view').hidden = true;
    $('#tabs').hidden = true;
    $('#who').hidden = true;
    $('#drawer').hidden = true;
    $('#login-error').textContent = message || '';
  }

  async function startSession() {
    state.session = await api('GET', '/api/session');
    $('#login').hidden = true;
    $('#view').hidden = false;
    $('#tabs').hidden = false;
    $('#who').hidden = false;
    $('#principal').textContent = state.session.principal + (state.session.canAct ? '' : ' (read-only)');
    $('#tab-txlog').hidden = !state.session.txlog;
    route();
  }

  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = $('#login-token').value.trim();
    const user = $('#login-user').value;
    const password = $('#login-password').value;
    if (token) state.auth = `Bearer ${token}`;
    else if (user && password) state.auth = `Basic ${btoa(unescape(encodeURIComponent(`${user}:${password}`)))}`;
    else return void ($('#login-error').textContent = 'Give a token, or a user and password.');
    try {
      await startSession();
      sessionStorage.setItem('tmm.auth', state.auth);
      $('#login-form').reset();
    } catch (e) {
      state.auth = '';
      $('#login-error').textContent = e.status === 401 ? 'Wrong credentials.' : e.message;
    }
  });
  $('#logout').addEventListener('click', () => {
    sessionStorage.removeItem('tmm.auth');
    state.auth = '';
    showLogin();
  });

  // ---------- routing ----------
  function route() {
    if (!state.session) return;
    const tab = currentTab();
    for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === tab);
    $('#drawer').hidden = true;
    const views = { overview: renderOverview, dead: renderDead, groups: renderGroups, outbox: renderOutbox, txlog: renderTxLog, audit: renderAudit, journey: renderJourney, lag: renderLag };
    const shown = (views[tab] || renderOverview)();
    const letter = linkedDeadLetter();
    shown.then(() => letter && showDeadLetter(letter)).catch((e) => e.status !== 401 && toast(e.message, true));
  }
  window.addEventListener('hashchange', route);

  const currentTab = () => location.hash.replace('#', '').split(/[?/]/)[0] || 'overview';
  let viewsBegun = 0;
  /**
   * Starts drawing a tab: call it before the view's first request, and show the content through what it returns.
   * The content is shown only if no later view was begun meanwhile and the operator is still on that tab, so a slow
   * answer never wins over a newer one (Clear, then Apply, on the same tab; a page turn; another tab).
   */
  function beginView(tab) {
    const ticket = ++viewsBegun;
    return (...children) => {
      if (ticket !== viewsBegun || currentTab() !== tab) return;
      $('#view').replaceChildren(...children);
    };
  }

  // ---------- direct links to one dead letter: #dead/<id> ----------
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  /** The dead letter the address names (#dead/<id>), if any. */
  function linkedDeadLetter() {
    const [tab, id] = location.hash.replace('#', '').split('/');
    return tab === 'dead' && id && UUID.test(id) ? id : undefined;
  }
  /** The address of one dead letter, absolute, for copying into a ticket or a chat. */
  const deadLetterUrl = (id) => `${location.origin}${location.pathname}#dead/${id}`;
  /** Shows a letter's own address in the bar without reloading the view (and drops it when the drawer closes). */
  function pointAddressAt(id) {
    const target = id ? `#dead/${id}` : currentTab() === 'dead' ? '#dead' : location.hash;
    if (location.hash !== target) history.replaceState(null, '', target);
  }
  function deadLetterLink(id) {
    return h('p', { class: 'permalink' }, h('a', { href: `#dead/${id}`, 'data-testid': 'permalink', title: 'A link that opens this dead letter' }, deadLetterUrl(id)));
  }

  // ---------- overview ----------
  async function renderOverview() {
    const setView = beginView('overview');
    const o = await api('GET', '/api/overview');
    const card = (label, value, alert, id) => h('div', { class: `card${alert ? ' alert' : ''}`, 'data-testid': id }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
    const dl = o.deadLetters;
    setView(
      h('h1', {}, 'Overview'),
      h('div', { class: 'cards' },
        card('Outbox pending', fmtNum(o.outbox.pending), false, 'card-pending'),
        card('Oldest pending', fmtAge(o.outbox.oldestPendingAgeMs), o.outbox.oldestPendingAgeMs > 60000, 'card-oldest'),
        card('Delivered / min', fmtNum(o.outbox.deliveredPerMinute), false, 'card-delivered'),
        card('Consumed / min', fmtNum(o.consumedPerMinute), false, 'card-consumed'),
        card('Dead letters (new)', fmtNum(dl.byStatus.NEW), dl.byStatus.NEW > 0, 'card-dead'),
        card('Oldest new dead letter', fmtAge(dl.oldestNewAgeMs), false, 'card-dead-age'),
        card('Outbox DEAD', fmtNum(o.outbox.byStatus.DEAD), o.outbox.byStatus.DEAD > 0, 'card-outbox-dead'),
      ),
      h('div', { class: 'panel' }, h('h2', {}, 'Throughput (this process)'), chart(o.throughput)),
      h('div', { class: 'grid2' },
        h('div', { class: 'panel' }, h('h2', {}, 'New dead letters by consumer'),
          table(['Consumer', 'Count'], dl.byConsumer, (r) => [r.consumer || '(unknown)', fmtNum(r.count)], (r) => go('dead', { status: 'NEW', consumer: r.consumer || undefined }), ['', 'num'])),
        h('div', { class: 'panel' }, h('h2', {}, 'Top error groups'),
          table(['Error', 'Consumer', 'Count'], dl.topGroups, (g) => [g.sampleError, g.consumer || '—', fmtNum(g.count)], (g) => go('dead', { status: 'NEW', fingerprint: g.fingerprint }), ['err', '', 'num'])),
      ),
    );
  }

  function chart(points) {
    if (!points || points.length < 2) return h('p', { class: 'empty' }, 'Collecting samples… (the chart fills in as this process runs)');
    const W = 1000, H = 170, pad = 4;
    const series = [['published', '#3259d6'], ['consumed', '#1b8a52'], ['deadLettered', '#c4342d']];
    const max = Math.max(1, ...points.flatMap((p) => series.map(([k]) => p[k])));
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.setAttribute('class', 'chart');
    svg.setAttribute('preserveAspectRatio', 'none');
    for (const [k, color] of series) {
      const path = document.createElementNS(ns, 'polyline');
      path.setAttribute('fill', 'none');
      path.setAttribute('stroke', color);
      path.setAttribute('stroke-width', '2');
      path.setAttribute('vector-effect', 'non-scaling-stroke');
      path.setAttribute('points', points.map((p, i) => `${(i / (points.length - 1)) * W},${H - pad - (p[k] / max) * (H - 2 * pad)}`).join(' '));
      svg.append(path);
    }
    const interval = points[points.length - 1].intervalMs;
    const per = interval >= 1000 ? `${Math.round(interval / 1000)} s` : `${interval} ms`;
    // Colours come from classes: the console's CSP allows no inline style attributes.
    const legend = h('div', { class: 'legend' }, ...series.map(([k]) => h('span', {}, h('i', { class: `key-${k}` }), k)), h('span', {}, `peak ${max} per ${per}, last ${points.length} samples`));
    return h('div', {}, svg, legend);
  }

  function table(heads, rows, cells, onClick, classes, testid) {
    if (!rows || rows.length === 0) return h('p', { class: 'empty', 'data-testid': testid ? `${testid}-empty` : undefined }, 'Nothing here.');
    return h('table', { 'data-testid': testid },
      h('thead', {}, h('tr', {}, heads.map((t, i) => h('th', { class: classes && classes[i] === 'num' ? 'num' : undefined }, t)))),
      h('tbody', {}, rows.map((r) => h('tr', { class: onClick ? 'clickable' : undefined, onclick: onClick ? () => onClick(r) : undefined, 'data-id': r.id || r.fingerprint },
        cells(r).map((c, i) => h('td', { class: classes ? classes[i] : undefined, title: typeof c === 'string' ? c : undefined }, c))))),
    );
  }

  function go(tab, filter) {
    if (tab === 'dead') {
      state.dead.filter = Object.fromEntries(Object.entries(filter || {}).filter(([, v]) => v !== undefined && v !== ''));
      state.dead.offset = 0;
    }
    if (location.hash === `#${tab}`) route();
    else location.hash = tab;
  }

  // ---------- dead letters ----------
  function query(filter, extra) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...filter, ...extra })) if (v !== undefined && v !== '') p.set(k, String(v));
    return p.toString();
  }

  async function renderDead() {
    const setView = beginView('dead');
    const f = state.dead.filter;
    const page = await api('GET', `/api/dead-letters?${query(f, { limit: state.dead.limit, offset: state.dead.offset })}`);
    const input = (name, label, attrs) => h('label', {}, label, h('input', { name, value: f[name] || '', ...attrs }));
    const form = h('form', { class: 'filters', 'data-testid': 'dead-filters', onsubmit: (ev) => {
      ev.preventDefault();
      const data = new FormData(ev.target);
      const next = {};
      for (const [k, v] of data.entries()) if (v) next[k] = k === 'from' || k === 'to' ? new Date(v).toISOString() : v;
      go('dead', next);
    } },
      h('label', {}, 'Status', h('select', { name: 'status' }, ['NEW', 'RESENT', 'DISCARDED', 'ALL'].map((s) => h('option', { value: s, selected: (f.status || 'NEW') === s }, s)))),
      input('topic', 'Topic', { placeholder: 'order.paid', size: 14 }),
      input('consumer', 'Consumer', { placeholder: 'Class.method', size: 18 }),
      input('fingerprint', 'Error group', { placeholder: 'fingerprint', size: 16 }),
      input('correlationId', 'Correlation id', { placeholder: 'tmm-correlation-id', size: 16 }),
      setFilterInput(input),
      h('label', {}, 'From', h('input', { name: 'from', type: 'datetime-local', value: f.from ? localInput(f.from) : '' })),
      h('label', {}, 'To', h('input', { name: 'to', type: 'datetime-local', value: f.to ? localInput(f.to) : '' })),
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'apply-filter' }, 'Apply'),
      h('button', { type: 'button', onclick: () => go('dead', { status: 'NEW' }) }, 'Clear'),
    );
    const canAct = state.session.canAct;
    const filtered = Object.keys(f).some((k) => k !== 'status');
    const bulk = h('div', { class: 'bulk' },
      h('span', { class: 'muted', 'data-testid': 'dead-total' }, `${fmtNum(page.total)} matching`),
      canAct && filtered && page.total > 0 && h('button', { 'data-testid': 'bulk-resend', onclick: () => bulkAction('resend', f, page.total) }, `Resend all ${fmtNum(page.total)}`),
      canAct && filtered && page.total > 0 && h('button', { class: 'danger', 'data-testid': 'bulk-discard', onclick: () => bulkAction('discard', f, page.total) }, `Discard all ${fmtNum(page.total)}`),
      !filtered && h('span', { class: 'muted' }, '(filter by topic, consumer, error group or time to act on many at once)'),
    );
    setView(
      h('h1', {}, 'Dead letters'),
      form,
      h('div', { class: 'panel' },
        bulk,
        table(['Last failure', 'Topic', 'Set', 'Consumer', 'Error', 'Attempts', 'Status'], page.items,
          (d) => [fmtTime(d.lastFailureAt), d.topic, setCell(d), d.consumer || '—', d.errorMessage, String(d.attempts), badge(d.status)],
          (d) => showDeadLetter(d.id), ['', '', '', '', 'err', 'num', ''], 'dead-table'),
        pager(page, (offset) => { state.dead.offset = offset; renderDead(); }),
      ),
    );
  }

  function localInput(iso) {
    const d = new Date(iso);
    const z = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
    return z.toISOString().slice(0, 16);
  }

  function pager(page, move) {
    const from = page.total === 0 ? 0 : page.offset + 1;
    const to = Math.min(page.offset + page.items.length, page.total);
    return h('div', { class: 'pager' },
      h('span', { 'data-testid': 'pager-text' }, `${fmtNum(from)}–${fmtNum(to)} of ${fmtNum(page.total)}`),
      h('button', { disabled: page.offset === 0, onclick: () => move(Math.max(0, page.offset - page.limit)), 'data-testid': 'prev' }, '‹ Prev'),
      h('button', { disabled: page.offset + page.limit >= page.total, onclick: () => move(page.offset + page.limit), 'data-testid': 'next' }, 'Next ›'),
    );
  }

  async function bulkAction(action, filter, total) {
    const criteria = Object.entries(filter).map(([k, v]) => `${k}=${v}`).join(', ');
    const ok = await confirmAction(`${action === 'resend' ? 'Resend' : 'Discard'} ${fmtNum(total)} dead letters?`, `All dead letters matching ${criteria} will be ${action === 'resend' ? 'sent again to their consumers' : 'marked as discarded'}. This is recorded in the audit trail.`, action === 'resend' ? 'Resend all' : 'Discard all');
    if (!ok) return;
    try {
      const r = await api('POST', `/api/dead-letters/${action}`, { filter });
      toast(`${action === 'resend' ? 'Resent' : 'Discarded'} ${r.done.length} of ${r.matched}${r.skipped.length ? ` (${r.skipped.length} skipped)` : ''}`);
      renderDead();
    } catch (e) {
      toast(e.message, true);
    }
  }

  // ---------- detail drawer ----------
  function openDrawer(title, ...children) {
    $('#drawer-title').textContent = title;
    $('#drawer-body').replaceChildren(...children);
    $('#drawer').hidden = false;
  }
  function closeDrawer() {
    if (!$('#drawer').hidden && linkedDeadLetter()) pointAddressAt(undefined);
    $('#drawer').hidden = true;
  }
  $('#drawer-close').addEventListener('click', closeDrawer);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !$('#confirm').open) closeDrawer(); });

  const meta = (pairs) => h('dl', { class: 'meta' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined || v === '' ? '—' : v)]));
  const pretty = (text) => { try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; } };

  async function showDeadLetter(id) {
    const d = await api('GET', `/api/dead-letters/${id}`);
    const editor = h('textarea', { 'data-testid': 'payload-editor', spellcheck: 'false', readonly: !(d.status !== 'RESENT' && state.session.canAct) });
    editor.value = pretty(d.payload);
    const original = editor.value;
    const canResend = state.session.canAct && d.status !== 'RESENT';
    const resendBtn = h('button', { class: 'primary', 'data-testid': 'resend', disabled: !canResend, onclick: async () => {
      const edited = editor.value !== original;
      let payload;
      if (edited) {
        try { payload = JSON.parse(editor.value); } catch (e) { return toast(`Payload is not valid JSON: ${e.message}`, true); }
      }
      const ok = await confirmAction(edited ? 'Resend with the edited payload?' : 'Resend this dead letter?', `It goes back to ${d.queue ? `queue ${d.queue}` : `${d.originalExchange} / ${d.originalRoutingKey}`} through the outbox.${edited ? ' The original payload is kept here.' : ''}`, edited ? 'Edit & resend' : 'Resend');
      if (!ok) return;
      try {
        const r = await api('POST', `/api/dead-letters/${d.id}/resend`, edited ? { payload } : {});
        toast(`Resent as message ${r.messageId}`);
        await refreshAfterAction(d.id);
      } catch (e) { toast(e.message, true); }
    } }, 'Resend');
    const discardBtn = h('button', { class: 'danger', 'data-testid': 'discard', disabled: !(state.session.canAct && d.status === 'NEW'), onclick: async () => {
      if (!(await confirmAction('Discard this dead letter?', 'It will not be handled. The decision is recorded in the audit trail.', 'Discard'))) return;
      try {
        await api('POST', `/api/dead-letters/${d.id}/discard`, {});
        toast('Discarded');
        await refreshAfterAction(d.id);
      } catch (e) { toast(e.message, true); }
    } }, 'Discard');
    pointAddressAt(d.id);
    openDrawer(`Dead letter`,
      h('div', { 'data-testid': 'detail', 'data-status': d.status }, badge(d.status)),
      deadLetterLink(d.id),
      meta([
        ['Id', h('code', {}, d.id)], ['Message id', h('code', {}, d.messageId)], ['Topic', d.topic], ['Consumer', d.consumer], ['Queue', d.queue],
        ['Original route', `${d.originalExchange || '(default)'} / ${d.originalRoutingKey}`], ['Dead-letter queue', d.deadLetterQueue],
        ['Reason', d.reason], ['Attempts', String(d.attempts)], ['First failure', fmtTime(d.firstFailureAt)], ['Last failure', fmtTime(d.lastFailureAt)],
        ['Error group', h('button', { class: 'link', onclick: () => go('dead', { status: 'NEW', fingerprint: d.fingerprint }) }, d.fingerprint)],
        ['Resent as', d.resentMessageId && h('code', {}, d.resentMessageId)], ['Status changed', d.statusAt && `${fmtTime(d.statusAt)} by ${d.statusBy}`],
      ]),
      h('h3', {}, 'Error'), h('pre', { 'data-testid': 'error' }, `${d.errorCode ? `[${d.errorCode}] ` : ''}${d.errorMessage}`),
      d.errorStack && h('details', {}, h('summary', {}, 'Stack'), h('pre', {}, d.errorStack)),
      h('h3', {}, 'Payload'), editor,
      h('div', { class: 'actions' }, discardBtn, resendBtn),
      h('h3', {}, 'Journey'),
      deadLetterJourney(d),
      h('h3', {}, 'Headers'), h('pre', {}, JSON.stringify(d.headers, null, 2)),
    );
  }

  async function refreshAfterAction(id) {
    if (currentTab() === 'dead') await renderDead();
    await showDeadLetter(id);
  }

  // ---------- groups ----------
  async function renderGroups() {
    const setView = beginView('groups');
    const { groups } = await api('GET', '/api/dead-letters/groups?status=NEW&limit=100');
    const canAct = state.session.canAct;
    setView(
      h('h1', {}, 'Error groups'),
      h('p', { class: 'muted' }, 'New dead letters grouped by error fingerprint (consumer + error code + the error text with ids and numbers blanked out).'),
      h('div', { class: 'panel' },
        table(['Error', 'Consumer', 'Topic', 'Count', 'Last', ''], groups,
          (g) => [g.sampleError, g.consumer || '—', g.topic, fmtNum(g.count), fmtTime(g.lastFailureAt),
            h('span', { class: 'bulk' },
              h('button', { onclick: (e) => { e.stopPropagation(); go('dead', { status: 'NEW', fingerprint: g.fingerprint }); } }, 'Show'),
              canAct && h('button', { 'data-testid': 'group-resend', onclick: (e) => { e.stopPropagation(); bulkAction('resend', { status: 'NEW', fingerprint: g.fingerprint }, g.count).then(renderGroups); } }, 'Resend group'),
              canAct && h('button', { class: 'danger', onclick: (e) => { e.stopPropagation(); bulkAction('discard', { status: 'NEW', fingerprint: g.fingerprint }, g.count).then(renderGroups); } }, 'Discard group'))],
          null, ['err', '', '', 'num', '', ''], 'groups-table'),
      ),
    );
  }

  // ---------- SET routing (the set of each message: a column and a filter) ----------
  function setCell(item) {
    return item.set || '—';
  }

  function setFilterInput(input) {
    return input('set', 'Set', { placeholder: 'SET name', size: 8, 'data-testid': 'filter-set' });
  }

  function outboxSetFilter() {
    return h('form', { class: 'filters', 'data-testid': 'outbox-filters', onsubmit: (ev) => {
      ev.preventDefault();
      state.outbox.set = new FormData(ev.target).get('set') || undefined;
      state.outbox.offset = 0;
      renderOutbox();
    } },
      h('label', {}, 'Set', h('input', { name: 'set', value: state.outbox.set || '', placeholder: 'SET name', size: 8, 'data-testid': 'outbox-filter-set' })),
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'outbox-apply-filter' }, 'Apply'),
    );
  }

  // ---------- outbox ----------
  async function renderOutbox() {
    const setView = beginView('outbox');
    const page = await api('GET', `/api/outbox?${query({ status: 'DEAD,EXCEPTION', set: state.outbox.set }, { limit: state.outbox.limit, offset: state.outbox.offset })}`);
    setView(
      h('h1', {}, 'Outbox: messages that could not be published'),
      h('p', { class: 'muted' }, 'DEAD rows failed every publish attempt (dispatcher.maxAttempts); EXCEPTION rows are in doubt. Retry makes them due again for the relay.'),
      outboxSetFilter(),
      h('div', { class: 'panel' },
        table(['Created', 'Topic', 'Set', 'Route', 'Attempts', 'Last error', 'Status'], page.items,
          (r) => [fmtTime(r.createdAt), r.topic, setCell(r), `${r.exchange || '(default)'} / ${r.routingKey}`, String(r.attempts), r.lastError || '—', badge(r.status)],
          (r) => showOutbox(r.id), ['', '', '', '', 'num', 'err', ''], 'outbox-table'),
        pager(page, (offset) => { state.outbox.offset = offset; renderOutbox(); }),
      ),
    );
  }

  async function showOutbox(id) {
    const r = await api('GET', `/api/outbox/${id}`);
    const stuck = r.status === 'DEAD' || r.status === 'EXCEPTION';
    const act = (action, label, cls) => h('button', { class: cls, 'data-testid': `outbox-${action}`, disabled: !(stuck && state.session.canAct), onclick: async () => {
      if (!(await confirmAction(`${label} this message?`, action === 'retry' ? 'It becomes PENDING and the relay publishes it again.' : 'The row is deleted; the audit trail keeps a copy.', label))) return;
      try { await api('POST', `/api/outbox/${id}/${action}`, {}); toast(action === 'retry' ? 'Queued for publishing' : 'Discarded'); closeDrawer(); renderOutbox(); } catch (e) { toast(e.message, true); }
    } }, label);
    openDrawer('Outbox message',
      meta([['Id', h('code', {}, r.id)], ['Status', badge(r.status)], ['Topic', r.topic], ['Exchange', r.exchange || '(default)'], ['Routing key', r.routingKey], ['Attempts', String(r.attempts)], ['Created', fmtTime(r.createdAt)], ['Ordering key', r.orderingKey]]),
      h('h3', {}, 'Last error'), h('pre', {}, r.lastError || '—'),
      h('h3', {}, 'Payload'), h('pre', {}, pretty(r.payload)),
      h('div', { class: 'actions' }, act('discard', 'Discard', 'danger'), act('retry', 'Retry', 'primary')),
      h('h3', {}, 'Headers'), h('pre', {}, JSON.stringify(r.headers, null, 2)),
    );
  }

  // ---------- transaction log (the log-mode sender: EXCEPTION / DEAD transactions) ----------
  async function renderTxLog() {
    const setView = beginView('txlog');
    const { health, problems } = await api('GET', '/api/txlog');
    const card = (label, value, alert, id) => h('div', { class: `card${alert ? ' alert' : ''}`, 'data-testid': id }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
    setView(
      h('h1', {}, 'Transaction log'),
      h('p', { class: 'muted' }, 'Transactions the log-mode sender could not finish alone. EXCEPTION: check-back never gave a verdict (or the record was unreadable); DEAD: publishing kept failing. Force-send publishes the messages now (you decided the business transaction committed); Discard drops them for good.'),
      h('div', { class: 'cards' },
        card('Log', health.status, health.status !== 'ok', 'txlog-status'),
        card('In doubt', fmtNum(health.inDoubt), false, 'txlog-in-doubt'),
        card('To send', fmtNum(health.pendingSend), false, 'txlog-pending'),
        card('EXCEPTION / DEAD', fmtNum(health.problems), health.problems > 0, 'txlog-problems'),
        card('Repairs', fmtNum(health.repairs), false, 'txlog-repairs'),
      ),
      h('div', { class: 'panel' }, h('h2', {}, 'Directories'),
        table(['Path', 'State', 'Segments', 'Error'], health.directories, (d) => [h('code', {}, d.path), badge(d.ok ? 'OK' : 'FAILED'), fmtNum(d.segments), d.error || '—'], null, ['', '', 'num', 'err'], 'txlog-directories')),
      h('div', { class: 'panel' }, h('h2', {}, 'Needs a decision'),
        table(['Since', 'State', 'Topics', 'Reason', 'Check-backs', 'Messages'], problems.map((p) => ({ ...p, id: p.uid })),
          (p) => [fmtTime(p.since), badge(p.state), p.topics.join(', ') || '—', p.reason, fmtNum(p.checks.length), fmtNum(p.messageCount)],
          (p) => showTxLogProblem(p.uid), ['', '', '', 'err', 'num', 'num'], 'txlog-table')),
    );
  }

  async function showTxLogProblem(uid) {
    const p = await api('GET', `/api/txlog/exceptions/${encodeURIComponent(uid)}`);
    const comment = h('input', { 'data-testid': 'txlog-comment', placeholder: 'why (kept in the audit trail)', size: 40, maxlength: 1000 });
    const can = state.session.canAct && p.state !== 'SENDING';
    const act = (action, label, cls, text) => h('button', { class: cls, 'data-testid': `txlog-${action}`, disabled: !can, onclick: async () => {
      if (!(await confirmAction(`${label} this transaction?`, text, label))) return;
      try {
        await api('POST', `/api/txlog/exceptions/${encodeURIComponent(uid)}/${action}`, comment.value ? { comment: comment.value } : {});
        toast(action === 'force-send' ? `Sent ${p.messages.length} message(s)` : 'Discarded');
        closeDrawer();
        await renderTxLog();
      } catch (e) { toast(e.message, true); }
    } }, label);
    openDrawer('Log transaction',
      h('div', { 'data-testid': 'txlog-detail', 'data-state': p.state }, badge(p.state)),
      meta([['Uid', h('code', {}, p.uid)], ['Service', p.serviceName], ['Topics', p.topics.join(', ')], ['Since', fmtTime(p.since)], ['Send attempts', String(p.sendAttempts)], ['Last error', p.lastError]]),
      h('h3', {}, 'Reason'), h('pre', {}, p.reason),
      h('h3', {}, 'Check-back history'),
      table(['When', 'Via', 'Verdict', 'Error'], p.checks, (c) => [fmtTime(c.at), c.via, c.verdict, c.error || '—'], null, ['', '', '', 'err'], 'txlog-checks'),
      h('h3', {}, `Messages (${p.messages.length})`),
      ...p.messages.map((m) => h('details', {}, h('summary', {}, `${m.topic} → ${m.exchange || '(default)'} / ${m.routingKey}  `, h('code', {}, m.id)), h('pre', { 'data-testid': 'txlog-payload' }, pretty(m.payload)))),
      h('div', { class: 'actions' }, comment),
      h('div', { class: 'actions' },
        act('discard', 'Discard', 'danger', 'Its messages are never published. The decision is written to the transaction log and the audit trail.'),
        act('force-send', 'Force-send', 'primary', `Its ${p.messages.length} message(s) are published now, as if the business transaction committed. The decision is written to the transaction log and the audit trail.`)),
      h('h3', {}, 'Audit'),
      table(['When', 'Who', 'Action', 'Comment'], p.audit, (a) => [fmtTime(a.at), a.principal, a.action, a.comment || '—'], null, null, 'txlog-audit'),
    );
  }

  // ---------- audit ----------
  async function renderAudit() {
    const setView = beginView('audit');
    const page = await api('GET', `/api/audit?limit=${state.audit.limit}&offset=${state.audit.offset}`);
    setView(
      h('h1', {}, 'Audit trail'),
      h('div', { class: 'panel' },
        table(['When', 'Who', 'Action', 'Target', 'Change', 'Comment'], page.items,
          (a) => [fmtTime(a.at), a.principal, a.action, auditTarget(a), h('code', {}, `${JSON.stringify(a.before && a.before.status || null)} → ${JSON.stringify(a.after && a.after.status || null)}`), a.comment || '—'],
          (a) => showAuditEntry(a), ['', '', '', '', '', 'wrap'], 'audit-table'),
        pager(page, (offset) => { state.audit.offset = offset; renderAudit(); }),
      ),
    );
  }

  // ---------- journey (recorded steps of one message: GET /api/journey, /api/journey/:id) ----------
  state.journey = { q: '', by: 'any' };
  const fmtPrecise = (t) => {
    if (!t) return '';
    const d = new Date(t);
    return `${d.toLocaleDateString()} ${d.toLocaleTimeString()}.${String(d.getMilliseconds()).padStart(3, '0')}`;
  };

  /** One message's steps as a timeline: step, time (ms), source, details. */
  function timelineList(steps, testid) {
    if (!steps || steps.length === 0) return h('p', { class: 'empty' }, 'No step recorded.');
    // Steps are listed in causal order; a time earlier than the step above comes from another clock, or from a
    // race (the broker hands a message to its consumer before the publisher's confirm returns).
    return h('ol', { class: 'journey', 'data-testid': testid },
      steps.map((s, i) => h('li', { 'data-step': s.step },
        h('strong', {}, s.step), ' ', h('span', { class: 'when' }, fmtPrecise(s.at)), s.source ? h('span', { class: 'src' }, ` · ${s.source}`) : null,
        i > 0 && s.at && steps[i - 1].at && s.at < steps[i - 1].at ? h('span', { class: 'skew', title: 'another clock, or the broker delivered before the confirm returned' }, ` (${steps[i - 1].at - s.at} ms before the step above)`) : null,
        stepDetail(s) ? h('div', { class: 'muted' }, stepDetail(s)) : null)));
  }
  function stepDetail(s) {
    if (s.detail !== undefined && s.attempt === undefined) return s.detail; // a dead letter's journey line
    return [s.attempt !== null && s.attempt !== undefined ? `attempt ${s.attempt}` : '', s.outcome || '', s.durationMs !== null && s.durationMs !== undefined ? `${s.durationMs} ms` : '', s.detail || ''].filter(Boolean).join(' · ');
  }
  /** What became of a resent copy, from its recorded steps. */
  function copyFate(copy) {
    const steps = copy.steps || [];
    const last = [...steps].reverse().find((s) => s.step === 'delivered');
    if (steps.some((s) => s.step === 'dead-lettered')) return ['failed again', 'DEAD'];
    if (last && last.outcome === 'consumed') return ['consumed', 'DELIVERED'];
    if (last) return [last.outcome, 'PENDING'];
    if (steps.some((s) => s.step === 'published')) return ['published, not consumed yet', 'PENDING'];
    return ['not published yet', 'PENDING'];
  }
  function copiesView(copies) {
    return (copies || []).map((c) => {
      const [fate, cls] = copyFate(c);
      return h('div', { class: 'copy', 'data-testid': 'journey-copy', 'data-fate': fate },
        h('h4', {}, 'Resent as ', h('code', {}, c.messageId), ' ', h('span', { class: `badge ${cls}`, 'data-testid': 'copy-fate' }, fate)),
        timelineList(c.steps, 'copy-timeline'),
        copiesView(c.copies));
    });
  }

  /** The dead letter drawer's journey: the recorded timeline (with the resent copies' fate) when there is one. */
  function deadLetterJourney(d) {
    if (!d.timeline) {
      return h('div', { 'data-testid': 'journey-view' },
        h('p', { class: 'muted' }, 'Not recorded (journey.enabled is off, or the steps were purged): what the dead letter and the audit trail say.'),
        timelineList(d.journey, 'journey'));
    }
    return h('div', { 'data-testid': 'journey-view' }, timelineList(d.timeline.steps, 'journey'), copiesView(d.timeline.copies));
  }

  async function renderJourney() {
    const setView = beginView('journey');
    const j = state.journey;
    const form = h('form', { class: 'filters', 'data-testid': 'journey-search', onsubmit: (ev) => {
      ev.preventDefault();
      const data = new FormData(ev.target);
      j.q = String(data.get('q') || '').trim();
      j.by = String(data.get('by') || 'any');
      renderJourney().catch((e) => toast(e.message, true));
    } },
      h('label', {}, 'Find', h('input', { name: 'q', value: j.q, placeholder: 'message id, correlation id or business key', size: 40, 'data-testid': 'journey-q' })),
      h('label', {}, 'By', h('select', { name: 'by' }, [['any', 'any'], ['messageId', 'message id'], ['correlationId', 'correlation id'], ['key', 'business key']].map(([v, t]) => h('option', { value: v, selected: j.by === v }, t)))),
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'journey-find' }, 'Find'),
    );
    let hits = [];
    if (j.q) {
      const kinds = j.by === 'any' ? ['messageId', 'correlationId', 'key'] : [j.by];
      const pages = await Promise.all(kinds.map((k) => api('GET', `/api/journey?${k}=${encodeURIComponent(j.q.slice(0, 128))}&limit=50`).catch(() => ({ items: [] }))));
      const seen = new Set();
      hits = pages.flatMap((p) => p.items).filter((x) => !seen.has(x.messageId) && seen.add(x.messageId));
    }
    setView(
      h('h1', {}, 'Message journey'),
      h('p', { class: 'muted' }, 'What tmm recorded about each message (journey.enabled): sent, stored, published, delivered to each consumer, retried, dead-lettered, resent, discarded — each step with the time and the source that saw it.'),
      form,
      h('div', { class: 'panel' },
        !j.q ? h('p', { class: 'empty' }, 'Search by message id, correlation id or business key.')
          : table(['First step', 'Message id', 'First', 'Last', 'Steps', 'Correlation id', 'Business key'], hits,
            (x) => [x.firstStep, h('code', {}, x.messageId), fmtPrecise(x.firstAt), fmtPrecise(x.lastAt), String(x.steps), x.correlationId || '—', x.businessKey || '—'],
            (x) => showJourney(x.messageId), ['', '', '', '', 'num', '', ''], 'journey-table')),
    );
  }

  async function showJourney(messageId) {
    const j = await api('GET', `/api/journey/${encodeURIComponent(messageId)}`);
    openDrawer('Message journey',
      meta([['Message id', h('code', {}, j.messageId)], ['Produced by', j.foreign ? 'another program (tmm saw it from "received" on)' : 'tmm'], ['Correlation id', j.correlationId], ['Business key', j.businessKey]]),
      h('h3', {}, 'Timeline'), timelineList(j.steps, 'journey'),
      copiesView(j.copies),
    );
  }

  /** A dead letter's audit target links to it; other targets are shown as they are. */
  function auditTarget(a) {
    if (a.targetType === 'dead-letter') return h('a', { href: `#dead/${a.targetId}`, onclick: (e) => e.stopPropagation() }, h('code', {}, `dead-letter ${a.targetId}`));
    return h('code', {}, `${a.targetType} ${a.targetId}`);
  }

  /** One audit entry: who, what, the comment, the state before and after — and for edit-and-resend, the payload diff. */
  function showAuditEntry(a) {
    const payloadBefore = a.before && typeof a.before.payload === 'string' ? a.before.payload : undefined;
    const payloadAfter = a.after && typeof a.after.payload === 'string' ? a.after.payload : undefined;
    const strip = (o) => (o && typeof o === 'object' ? Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'payload')) : o);
    openDrawer('Audit entry',
      meta([['When', fmtTime(a.at)], ['Who', a.principal], ['Action', a.action], ['Target', auditTarget(a)], ['Comment', a.comment && h('span', { 'data-testid': 'audit-comment' }, a.comment)]]),
      ...(payloadBefore !== undefined || payloadAfter !== undefined ? [h('h3', {}, 'Payload: before → after'), payloadDiff(pretty(payloadBefore || ''), pretty(payloadAfter || ''))] : []),
      h('h3', {}, 'Before'), h('pre', { 'data-testid': 'audit-before' }, JSON.stringify(strip(a.before), null, 2)),
      h('h3', {}, 'After'), h('pre', { 'data-testid': 'audit-after' }, JSON.stringify(strip(a.after), null, 2)),
    );
  }

  /** A line diff (longest common subsequence) of two texts: removed lines red with "-", added green with "+". */
  function payloadDiff(before, after) {
    const a = before.split('\n');
    const b = after.split('\n');
    if (a.length * b.length > 250000) return h('div', { class: 'grid2' }, h('pre', {}, before), h('pre', {}, after));
    const lcs = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
    for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    const lines = [];
    let i = 0, j = 0;
    while (i < a.length || j < b.length) {
      if (i < a.length && j < b.length && a[i] === b[j]) { lines.push(['same', ' ', a[i]]); i++; j++; }
      else if (i < a.length && (j === b.length || lcs[i + 1][j] >= lcs[i][j + 1])) { lines.push(['del', '-', a[i]]); i++; }
      else { lines.push(['add', '+', b[j]]); j++; }
    }
    return h('pre', { class: 'diff', 'data-testid': 'payload-diff' }, lines.map(([kind, mark, text]) => h('span', { class: `diff-${kind}` }, `${mark} ${text}\n`)));
  }

  // ---------- lag: latencies, consumers, queues on the broker, retries, alerts ----------
  const fmtSec = (s) => (s === null || s === undefined ? '—' : s < 1 ? `${Math.round(s * 1000)} ms` : s < 120 ? `${s.toFixed(s < 10 ? 2 : 1)} s` : fmtAge(s * 1000));
  const fmtPct = (r) => (r === null || r === undefined ? '—' : `${(r * 100).toFixed(r < 0.1 ? 1 : 0)} %`);

  async function renderLag() {
    const setView = beginView('lag');
    const [lag, health] = await Promise.all([api('GET', '/api/lag'), api('GET', '/api/health').catch((e) => (e.status === 503 ? null : Promise.reject(e)))]);
    const latency = (title, rows, id) => h('div', { class: 'panel' }, h('h2', {}, title),
      table(['Topic', 'Count', 'p50', 'p95', 'p99'], rows, (p) => [p.topic, fmtNum(p.count), fmtSec(p.p50), fmtSec(p.p95), fmtSec(p.p99)], null, ['', 'num', 'num', 'num', 'num'], id));
    const now = Date.now();
    setView(
      h('h1', {}, 'Lag and the broker'),
      alertsPanel(health),
      h('div', { class: 'panel' }, h('h2', {}, 'Outbox backlog by topic (due, not yet published)'),
        table(['Topic', 'Due rows', 'Oldest waits'], lag.backlog, (b) => [b.topic, fmtNum(b.due), fmtAge(b.oldestAgeMs)], null, ['', 'num', 'num'], 'backlog')),
      h('div', { class: 'grid2' },
        latency('Publish latency (due → broker confirm)', lag.publishLatency, 'publish-latency'),
        latency('End-to-end latency (created → handled)', lag.endToEndLatency, 'e2e-latency'),
      ),
      h('div', { class: 'panel' }, h('h2', {}, 'Consumers (this process, last minute)'),
        table(['Consumer', 'Settled / min', 'Handled / min', 'Failed / min', 'Failure rate', 'Handled (total)', 'Failed (total)'], lag.consumers,
          (c) => [c.consumer, fmtNum(c.perMinute), fmtNum(c.handledPerMinute), fmtNum(c.failedPerMinute), fmtPct(c.failureRate), fmtNum(c.total.handled), fmtNum(c.total.failed)],
          null, ['', 'num', 'num', 'num', 'num', 'num', 'num'], 'consumer-rates')),
      h('div', { class: 'panel' }, h('h2', {}, `Queues on the broker${lag.queues.source ? ` (${lag.queues.source === 'amqp' ? 'AMQP passive declares: no unacked count' : 'management API'})` : ''}`),
        lag.queues.note ? h('p', { class: 'muted' }, lag.queues.note) : null,
        table(['Queue', 'Kind', 'Consumer', 'Ready', 'Unacked', 'Consumers', 'Problem'], lag.queues.items,
          (q) => [q.queue, q.kind, q.consumer, fmtNum(q.ready), q.unacked === null ? '—' : fmtNum(q.unacked), fmtNum(q.consumers), q.error || ''],
          null, ['', '', '', 'num', 'num', 'num', 'wrap'], 'queue-depths')),
      h('div', { class: 'panel' }, h('h2', {}, 'Waiting in retry queues (sent there by this process)'),
        table(['Message', 'Consumer', 'Retry queue', 'Failed attempt', 'Error', 'Comes back'], lag.retrying,
          (r) => [h('code', {}, r.messageId), r.consumer, r.retryQueue, String(r.attempt), r.error, r.dueAt > now ? `in ${fmtAge(r.dueAt - now)} (${fmtTime(r.dueAt)})` : `due since ${fmtAge(now - r.dueAt)}`],
          null, ['', '', '', 'num', 'wrap', ''], 'retrying')),
    );
  }

  /** The alerts of tmm.health(): each with its value and threshold, firing ones first and marked. */
  function alertsPanel(health) {
    if (!health) return h('div', { class: 'panel' }, h('h2', {}, 'Alerts'), h('p', { class: 'empty' }, 'Health is not available.'));
    const labels = { backlogAge: 'Outbox backlog age', outboxDead: 'Outbox DEAD rows', deadLetterRate: 'Dead-letter rate', consumerHeartbeat: 'Consumer heartbeat' };
    const value = (k, a) => (a.value === null ? '—' : k === 'backlogAge' ? fmtAge(a.value) : fmtNum(a.value));
    const limit = (k, a) => (a.threshold === null ? 'off' : k === 'backlogAge' || k === 'consumerHeartbeat' ? fmtAge(a.threshold) : k === 'deadLetterRate' ? `${fmtNum(a.threshold)} per ${fmtAge(a.windowMs)}` : fmtNum(a.threshold));
    const rows = Object.entries(health.alerts).sort(([, x], [, y]) => Number(y.firing) - Number(x.firing));
    return h('div', { class: 'panel', 'data-testid': 'alerts' }, h('h2', {}, 'Alerts'),
      h('div', { class: 'cards' }, rows.map(([k, a]) => h('div', { class: `card${a.firing ? ' alert' : ''}`, 'data-alert': k, 'data-firing': String(a.firing) },
        h('div', { class: 'label' }, labels[k] || k), h('div', { class: 'value' }, a.firing ? 'FIRING' : 'ok'),
        h('div', { class: 'muted' }, `${value(k, a)} (limit ${limit(k, a)})`), a.detail ? h('div', { class: 'muted wrap' }, a.detail) : null))));
  }

  // ---------- start ----------
  startSession().catch(() => showLogin());
})();

// admin.js: small conveniences on the server-rendered admin page. The page
// works without it: every action is a plain form that posts to /admin/...
// Here: a confirmation before what cannot be undone, a copy button for a new
// bot token, the server's address in the curl example, and a live clients
// table that refreshes itself while the page is visible.

const root = document.getElementById('admin');

// Forms with a data-confirm text ask before they submit.
for (const form of document.querySelectorAll('form[data-confirm]')) {
  form.addEventListener('submit', (ev) => {
    const text = form.dataset.confirm;
    if (text && !window.confirm(text)) ev.preventDefault();
  });
}

for (const node of document.querySelectorAll('.origin')) {
  node.textContent = location.origin;
}

const copy = document.getElementById('copy-token');
const token = document.getElementById('new-token');
if (copy && token && navigator.clipboard) {
  copy.hidden = false;
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(token.textContent);
      copy.textContent = 'Copied';
    } catch {
      copy.textContent = 'Select and copy it';
    }
  });
}

// ---- live clients -----------------------------------------------------

const REFRESH_MS = 5000;
const table = document.getElementById('clients-table');

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function ago(iso) {
  if (!iso) return 'never';
  const secs = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (secs < 5) return 'just now';
  if (secs < 60) return `${secs} s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ago`;
  return `${Math.floor(secs / 3600)} h ago`;
}

function short(s, n) {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** render replaces the clients table's rows with one row per user. */
function render(clients) {
  const byUser = new Map();
  for (const c of clients) {
    if (!byUser.has(c.user)) byUser.set(c.user, []);
    byUser.get(c.user).push(c);
  }
  const body = el('tbody');
  if (byUser.size === 0) {
    const row = el('tr');
    row.append(el('td', 'Nobody is connected.', { colspan: '5', class: 'muted' }));
    body.append(row);
  }
  for (const [user, list] of byUser) {
    const pending = list.reduce((n, c) => n + c.pending_polls, 0);
    const last = list.map((c) => c.last_poll).filter(Boolean).sort().at(-1);
    const row = el('tr', null, { 'data-user': user });
    row.append(el('th', user, { scope: 'row' }), el('td', String(list.length)), el('td', String(pending)));
    const when = el('td');
    when.append(last ? el('time', ago(last), { datetime: last }) : el('span', 'never', { class: 'muted' }));
    row.append(when);
    const agents = el('ul', null, { class: 'agents' });
    for (const c of list) {
      const li = el('li');
      li.append(el('span', c.kind, { class: 'tag' }), ` ${c.user_agent ? short(c.user_agent, 90) : 'no user agent'}`);
      if (c.pending_polls) li.append(el('span', ' (polling)', { class: 'muted' }));
      agents.append(li);
    }
    const cell = el('td');
    cell.append(agents);
    row.append(cell);
    body.append(row);
  }
  table.tBodies[0].replaceWith(body);
}

async function refresh() {
  if (document.hidden) return;
  try {
    const res = await fetch('/api/admin/clients', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    if (res.status === 401 || res.status === 403) {
      // Signed out or no longer an admin: the page says so on reload.
      clearInterval(timer);
      location.reload();
      return;
    }
    if (!res.ok) return;
    const body = await res.json();
    render(body.clients || []);
  } catch {
    // The server is restarting or the network is down: try again later.
  }
}

let timer;
if (root && table) {
  timer = setInterval(refresh, REFRESH_MS);
  document.addEventListener('visibilitychange', refresh);
}

// members.js: the member list of the open room with live presence marks.

import { api, path } from './api.js';
import { $, el } from './dom.js';

const ORDER = { online: 0, away: 1, offline: 2 };
const STATUS_TEXT = { online: 'online', away: 'away', offline: 'offline' };

export class MemberList {
  constructor(app) {
    this.app = app;
    this.list = $('member-list');
    this.heading = $('members-heading');
    this.room = null;
    this.names = new Map(); // lower-case name -> name as spelled
    this.token = 0;
    this.queue = null; // membership changes seen while loading
    this.list.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-user]');
      if (b) this.app.startDirect(b.dataset.user);
    });
  }

  /** open loads the members of room. */
  async open(room) {
    const token = ++this.token;
    this.room = room;
    this.names.clear();
    this.queue = [];
    this.list.replaceChildren(el('li', { class: 'muted' }, 'Loading…'));
    const started = performance.now();
    let body;
    try {
      body = await api('GET', path`/api/rooms/${room}`);
    } catch (err) {
      if (token !== this.token) return;
      this.queue = null;
      this.list.replaceChildren(el('li', { class: 'muted' }, `Could not load members: ${err.message}`));
      return;
    }
    if (token !== this.token) return;
    if (body.room) this.app.updateRoom(body.room);
    for (const u of body.members || []) {
      this.names.set(u.name.toLowerCase(), u.name);
      this.app.notePresence(u.name, u.status, started);
    }
    const queued = this.queue;
    this.queue = null;
    for (const [kind, name] of queued) this.membership(kind, name);
    this.render();
  }

  /** membership adds ('join') or removes ('leave') a member of the open room. */
  membership(kind, name) {
    if (this.queue) {
      this.queue.push([kind, name]);
      return;
    }
    if (kind === 'join') this.names.set(name.toLowerCase(), name);
    else this.names.delete(name.toLowerCase());
    this.render();
  }

  /** render redraws the list from the member names and the presence map. */
  render() {
    if (this.queue) return;
    const people = [...this.names.values()].map((name) => ({ name, status: this.app.statusOf(name) }));
    people.sort((a, b) => (ORDER[a.status] ?? 3) - (ORDER[b.status] ?? 3) || a.name.localeCompare(b.name));
    const online = people.filter((p) => p.status !== 'offline').length;
    this.heading.textContent = `Members · ${online}/${people.length} here`;
    const me = this.app.me.name.toLowerCase();
    this.list.replaceChildren(...people.map((p) => el('li', { dataset: { user: p.name, status: p.status } },
      el('span', { class: 'presence', dataset: { status: p.status }, 'aria-hidden': 'true' }),
      p.name.toLowerCase() === me
        ? el('span', { class: 'member-name' }, p.name, el('span', { class: 'muted' }, ' (you)'))
        : el('button', {
          type: 'button', class: 'member-name link-button', dataset: { user: p.name },
          title: `Send a direct message to ${p.name}`,
        }, p.name),
      el('span', { class: 'visually-hidden' }, `, ${STATUS_TEXT[p.status] || p.status}`),
    )));
  }
}

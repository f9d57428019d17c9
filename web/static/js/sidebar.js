// sidebar.js: the lists of rooms and direct conversations with their unread
// counts, the room directory dialog and the new-conversation dialog.

import { api } from './api.js';
import { $, el } from './dom.js';

export class Sidebar {
  constructor(app) {
    this.app = app;
    this.rooms = $('room-list');
    this.dms = $('dm-list');
    for (const list of [this.rooms, this.dms]) {
      list.addEventListener('click', (ev) => {
        const b = ev.target.closest('button[data-room]');
        if (b) app.openRoom(b.dataset.room, { focus: true });
      });
    }
    this.setupRoomDialog();
    this.setupDirectDialog();
  }

  /** render redraws both lists from the app's rooms. */
  render() {
    const app = this.app;
    const entries = [...app.rooms.values()];
    const byName = (a, b) => app.roomLabel(a.room.name).localeCompare(app.roomLabel(b.room.name));
    const rooms = entries.filter((e) => e.room.kind !== 'direct').sort(byName);
    const dms = entries.filter((e) => e.room.kind === 'direct').sort(byName);
    this.rooms.replaceChildren(...rooms.map((e) => this.item(e)));
    this.dms.replaceChildren(...dms.map((e) => this.item(e)));
    if (!dms.length) this.dms.append(el('li', { class: 'muted empty' }, 'No conversations yet'));
  }

  item(entry) {
    const app = this.app;
    const { room } = entry;
    const current = room.name === app.current;
    const label = app.roomLabel(room.name);
    const parts = [label];
    if (entry.unread) parts.push(`${entry.unread} unread`);
    if (entry.mentions) parts.push(`${entry.mentions} mentioning you`);
    const children = [];
    if (room.kind === 'direct') {
      const status = entry.peer ? app.statusOf(entry.peer) : 'offline';
      children.push(el('span', { class: 'presence', dataset: { status }, 'aria-hidden': 'true' }));
      parts.push(status);
    } else {
      children.push(el('span', { class: 'room-sigil', 'aria-hidden': 'true' }, room.kind === 'private' ? '🔒' : '#'));
    }
    children.push(el('span', { class: 'room-name' }, room.kind === 'direct' ? label.replace(/^@/, '') : room.name));
    if (entry.mentions) children.push(el('span', { class: 'badge badge-mention', 'aria-hidden': 'true' }, `@${entry.mentions}`));
    if (entry.unread) children.push(el('span', { class: 'badge', 'aria-hidden': 'true' }, String(entry.unread)));
    return el('li', {},
      el('button', {
        type: 'button',
        class: `room-link${entry.unread ? ' has-unread' : ''}`,
        dataset: { room: room.name, unread: String(entry.unread), mentions: String(entry.mentions) },
        'aria-current': current ? 'page' : null,
        'aria-label': parts.join(', '),
      }, children));
  }

  setupRoomDialog() {
    const dialog = $('room-dialog');
    const directory = $('room-directory');
    const form = $('create-room');
    const error = form.querySelector('.form-error');
    this.roomDialog = dialog;
    this.directory = directory;

    $('browse-rooms').addEventListener('click', () => {
      error.hidden = true;
      form.reset();
      dialog.showModal();
      this.loadDirectory();
    });
    directory.addEventListener('click', async (ev) => {
      const b = ev.target.closest('button[data-room]');
      if (!b) return;
      b.disabled = true;
      try {
        await this.app.joinRoom(b.dataset.room);
        dialog.close();
      } catch (err) {
        b.disabled = false;
        b.after(el('span', { class: 'form-error inline', role: 'alert' }, err.message));
      }
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const name = form.elements.name.value.trim().replace(/^#/, '');
      if (!name) {
        error.textContent = 'Give the room a name.';
        error.hidden = false;
        form.elements.name.focus();
        return;
      }
      const submit = form.querySelector('button[type=submit]');
      submit.disabled = true;
      try {
        const res = await api('POST', '/api/rooms', {
          name,
          topic: form.elements.topic.value.trim(),
          private: form.elements.private.checked,
        });
        this.app.addRoom(res.room);
        dialog.close();
        this.app.openRoom(res.room.name, { focus: true });
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        form.elements.name.focus();
      } finally {
        submit.disabled = false;
      }
    });
  }

  async loadDirectory() {
    const directory = this.directory;
    directory.replaceChildren(el('li', { class: 'muted' }, 'Loading rooms…'));
    let body;
    try {
      body = await api('GET', '/api/rooms');
    } catch (err) {
      directory.replaceChildren(el('li', { class: 'form-error' }, `Could not list the rooms: ${err.message}`));
      return;
    }
    const rooms = (body.rooms || []).filter((r) => r.kind !== 'direct').sort((a, b) => a.name.localeCompare(b.name));
    if (!rooms.length) {
      directory.replaceChildren(el('li', { class: 'muted' }, 'No rooms yet. Create the first one below.'));
      return;
    }
    directory.replaceChildren(...rooms.map((r) => {
      const joined = r.joined ?? this.app.rooms.has(r.name);
      const count = typeof r.members === 'number' ? `${r.members} member${r.members === 1 ? '' : 's'}` : '';
      return el('li', {},
        el('div', { class: 'directory-room' },
          el('span', { class: 'room-name' }, r.kind === 'private' ? `🔒 ${r.name}` : `#${r.name}`),
          el('span', { class: 'muted' }, [count, r.topic].filter(Boolean).join(' · '))),
        joined
          ? el('button', { type: 'button', class: 'small', dataset: { room: r.name } }, 'Open')
          : el('button', { type: 'button', class: 'small primary', dataset: { room: r.name }, 'aria-label': `Join ${r.name}` }, 'Join'));
    }));
  }

  setupDirectDialog() {
    const dialog = $('dm-dialog');
    const form = $('start-dm');
    const error = form.querySelector('.form-error');
    const known = $('known-users');
    this.dmDialog = dialog;
    $('new-dm').addEventListener('click', () => this.openDirect(''));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const user = form.elements.user.value.trim().replace(/^@/, '');
      const text = form.elements.text.value;
      if (!user || !text.trim()) {
        error.textContent = user ? 'Write a message.' : 'Who is it for?';
        error.hidden = false;
        (user ? form.elements.text : form.elements.user).focus();
        return;
      }
      const submit = form.querySelector('button[type=submit]');
      submit.disabled = true;
      try {
        await this.app.sendDirect(user, text);
        dialog.close();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    this.fillKnown = () => {
      const names = [...this.app.presence.values()].map((p) => p.name)
        .filter((n) => n.toLowerCase() !== this.app.me.name.toLowerCase()).sort();
      known.replaceChildren(...names.map((n) => el('option', { value: n })));
    };
  }

  /** openDirect opens the new-conversation dialog addressed to user. */
  openDirect(user) {
    const form = $('start-dm');
    form.reset();
    form.querySelector('.form-error').hidden = true;
    form.elements.user.value = user;
    this.fillKnown();
    this.dmDialog.showModal();
    (user ? form.elements.text : form.elements.user).focus();
  }
}

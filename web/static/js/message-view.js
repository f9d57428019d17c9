// message-view.js: the message pane of the open room: history, load-older
// on scroll, live inserts, edit and delete.

import { api, path } from './api.js';
import { $, el } from './dom.js';
import { serverFragment, highlightMentions, mentions, stripLeadingText } from './message-html.js';
import { shortTime, longTime } from './time.js';

const PAGE = 50;
// Messages from one author closer together than this share one header.
const GROUP_MS = 5 * 60 * 1000;

/** ACTION_PREFIX marks a /me message. chatd stores an action as plain text
 * starting with "/me " (the IRC convention, readable as is by bots and API
 * clients); the page renders it as "* alice waves". A message that should
 * start with a literal "/me" is typed as "//me". */
export const ACTION_PREFIX = '/me ';

export function isAction(text) {
  return typeof text === 'string' && text.startsWith(ACTION_PREFIX);
}

function nameOf(u) {
  return typeof u === 'string' ? u : (u && u.name) || '';
}

export class MessageView {
  constructor(app) {
    this.app = app;
    this.scroller = $('messages');
    this.list = $('message-list');
    this.status = $('history-status');
    this.jump = $('jump-latest');
    this.template = $('message-template').content.firstElementChild;
    this.room = null;
    this.token = 0;
    this.byId = new Map(); // id -> <li>
    this.data = new Map(); // id -> message
    this.oldest = null;
    this.complete = false;
    this.loading = false;

    this.scroller.addEventListener('scroll', () => this.onScroll(), { passive: true });
    this.list.addEventListener('click', (ev) => this.onClick(ev));
    this.jump.addEventListener('click', () => this.scrollToBottom());
  }

  /** open shows the room's recent history. */
  open(room) {
    this.room = room;
    this.token++;
    this.byId.clear();
    this.data.clear();
    this.list.replaceChildren();
    this.oldest = null;
    this.complete = false;
    this.loading = false;
    this.jump.hidden = true;
    this.scroller.setAttribute('aria-busy', 'true');
    this.status.textContent = 'Loading messages…';
    return this.loadOlder(true);
  }

  async loadOlder(initial = false) {
    if (this.loading || this.complete || !this.room) return;
    const token = this.token;
    const room = this.room;
    this.loading = true;
    if (!initial) this.status.textContent = 'Loading older messages…';
    let body;
    try {
      const q = this.oldest != null && !initial ? `?before=${this.oldest}&limit=${PAGE}` : `?limit=${PAGE}`;
      body = await api('GET', path`/api/rooms/${room}/messages` + q);
    } catch (err) {
      if (token !== this.token) return;
      this.loading = false;
      this.scroller.removeAttribute('aria-busy');
      this.status.replaceChildren(
        `Could not load messages: ${err.message} `,
        el('button', { type: 'button', class: 'small', on: { click: () => this.loadOlder(initial) } }, 'Try again'),
      );
      return;
    }
    if (token !== this.token) return;
    const msgs = body.messages || [];
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    for (const m of msgs) this.upsert(m, { quiet: true });
    if (msgs.length < PAGE) {
      this.complete = true;
      this.status.textContent = `This is the beginning of ${this.app.roomLabel(room)}.`;
    } else {
      this.status.textContent = '';
    }
    if (initial) this.scrollToBottom();
    else this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    this.loading = false;
    this.scroller.removeAttribute('aria-busy');
    // A short history may not fill the pane, and then no scroll event would
    // ever ask for more.
    if (!this.complete && this.scroller.scrollHeight <= this.scroller.clientHeight + 40) this.loadOlder();
  }

  onScroll() {
    if (this.scroller.scrollTop < 120) this.loadOlder();
    if (this.atBottom()) this.jump.hidden = true;
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 60;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.jump.hidden = true;
  }

  /** upsert shows a message, or refreshes it if it is shown already. */
  upsert(m, { quiet = false } = {}) {
    if (m.room !== this.room) return;
    const existing = this.byId.get(m.id);
    if (existing) {
      this.fill(existing, m);
      return;
    }
    const stick = !quiet && (this.atBottom() || nameOf(m.user) === this.app.me.name);
    const li = this.template.cloneNode(true);
    li.dataset.id = String(m.id);
    this.fill(li, m);
    this.byId.set(m.id, li);
    if (this.oldest == null || m.id < this.oldest) this.oldest = m.id;
    this.insert(li, m.id);
    this.regroup(li);
    this.regroup(nextMessage(li));
    if (quiet) return;
    if (stick) this.scrollToBottom();
    else this.jump.hidden = false;
  }

  insert(li, id) {
    // Walk back from the end: live messages are newest, so this is short.
    for (let n = this.list.lastElementChild; n; n = n.previousElementSibling) {
      if (n.classList.contains('message') && Number(n.dataset.id) < id) {
        n.after(li);
        return;
      }
    }
    this.list.prepend(li);
  }

  fill(li, m) {
    const me = this.app.me;
    const user = nameOf(m.user);
    this.data.set(m.id, m);
    li.dataset.user = user;
    li.dataset.ts = m.ts;
    const mine = user.toLowerCase() === me.name.toLowerCase();
    const action = isAction(m.text);
    li.classList.toggle('mine', mine);
    li.classList.toggle('action', action);
    li.classList.toggle('mentions-me', !mine && mentions(m.text, me.name));
    li.querySelector('.author').textContent = user;
    const time = li.querySelector('time');
    time.dateTime = m.ts;
    time.textContent = shortTime(m.ts);
    time.title = longTime(m.ts);
    const edited = li.querySelector('.edited');
    edited.hidden = !m.edited_ts;
    if (m.edited_ts) edited.title = `Edited ${longTime(m.edited_ts)}`;

    const frag = serverFragment(m.html);
    if (action && stripLeadingText(frag, ACTION_PREFIX)) {
      frag.prepend(el('span', { class: 'action-author' }, user), ' ');
    }
    highlightMentions(frag, me.name);
    const body = li.querySelector('.message-body');
    body.replaceChildren(frag);

    const actions = li.querySelector('.message-actions');
    const canEdit = mine;
    const canDelete = mine || me.role === 'admin';
    actions.hidden = !canEdit && !canDelete;
    const edit = actions.querySelector('.edit');
    const del = actions.querySelector('.delete');
    edit.hidden = !canEdit;
    del.hidden = !canDelete;
    edit.setAttribute('aria-label', `Edit message from ${shortTime(m.ts)}`);
    del.setAttribute('aria-label', `Delete message from ${user} at ${shortTime(m.ts)}`);
  }

  // regroup hides the header of a message that continues its author's run.
  regroup(li) {
    if (!li) return;
    const prev = previousMessage(li);
    const close = prev
      && prev.dataset.user === li.dataset.user
      && !li.classList.contains('action') && !prev.classList.contains('action')
      && Date.parse(li.dataset.ts) - Date.parse(prev.dataset.ts) < GROUP_MS;
    li.classList.toggle('continued', Boolean(close));
  }

  /** remove takes a deleted message off the pane. */
  remove(id) {
    const li = this.byId.get(id);
    if (!li) return;
    const next = nextMessage(li);
    this.byId.delete(id);
    this.data.delete(id);
    li.remove();
    this.regroup(next);
  }

  /** notice shows a line from chatd itself (command output, errors,
   * joins and leaves). It is local to this page and never sent. */
  notice(text, kind = 'info') {
    const stick = this.atBottom();
    const lines = String(text).split('\n');
    const li = el('li', { class: `notice notice-${kind}` });
    lines.forEach((line, i) => {
      if (i) li.append(el('br'));
      li.append(line);
    });
    this.list.append(li);
    if (stick) this.scrollToBottom();
  }

  onClick(ev) {
    const button = ev.target.closest('button');
    const li = ev.target.closest('li.message');
    if (!li) return;
    if (!button) {
      // A tap on a message shows its actions on screens without hover.
      if (ev.target.closest('a') || getSelection().toString()) return;
      for (const other of this.list.querySelectorAll('li.selected')) if (other !== li) other.classList.remove('selected');
      li.classList.toggle('selected');
      return;
    }
    const id = Number(li.dataset.id);
    if (button.classList.contains('edit')) this.startEdit(id);
    else if (button.classList.contains('delete')) this.confirmDelete(id, button);
  }

  /** editLast edits my newest message in the room, if any (Up in an empty
   * composer). */
  editLast() {
    const me = this.app.me.name.toLowerCase();
    const mine = [...this.list.querySelectorAll('li.message.mine')];
    const li = mine.at(-1);
    if (li && li.dataset.user.toLowerCase() === me) {
      this.startEdit(Number(li.dataset.id));
      return true;
    }
    return false;
  }

  startEdit(id) {
    const li = this.byId.get(id);
    const m = this.data.get(id);
    if (!li || !m || li.querySelector('.edit-form')) return;
    const body = li.querySelector('.message-body');
    const input = el('textarea', { class: 'edit-input', rows: 2, 'aria-label': 'Edit the message', maxlength: 4000 });
    input.value = m.text;
    const error = el('p', { class: 'edit-error', role: 'alert', hidden: true });
    const form = el('form', { class: 'edit-form' },
      input,
      error,
      el('p', { class: 'edit-hint' }, 'Enter saves · Escape cancels'),
    );
    const finish = () => {
      form.remove();
      body.hidden = false;
      li.classList.remove('editing');
      if (!this.app.composerBusy()) this.app.focusComposer();
    };
    const save = async () => {
      const text = input.value.trim();
      if (!text || text === m.text) return finish();
      input.disabled = true;
      try {
        const res = await api('PATCH', path`/api/messages/${id}`, { text });
        finish();
        if (res && res.message) this.upsert(res.message);
      } catch (err) {
        input.disabled = false;
        error.textContent = err.message;
        error.hidden = false;
        input.focus();
      }
    };
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        save();
      } else if (ev.key === 'Escape') {
        ev.preventDefault();
        finish();
      }
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      save();
    });
    li.classList.add('editing');
    body.hidden = true;
    body.after(form);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  // confirmDelete asks for a second press rather than opening a dialog.
  async confirmDelete(id, button) {
    if (button.dataset.armed !== 'true') {
      button.dataset.armed = 'true';
      const label = button.getAttribute('aria-label');
      button.textContent = 'Really delete?';
      button.setAttribute('aria-label', 'Press again to delete the message');
      setTimeout(() => {
        if (!button.isConnected) return;
        button.dataset.armed = 'false';
        button.textContent = 'Delete';
        button.setAttribute('aria-label', label);
      }, 4000);
      return;
    }
    button.disabled = true;
    try {
      await api('DELETE', path`/api/messages/${id}`);
      this.remove(id);
    } catch (err) {
      button.disabled = false;
      this.notice(`Could not delete the message: ${err.message}`, 'error');
    }
  }
}

// A notice between two messages breaks their run.
function previousMessage(li) {
  const n = li.previousElementSibling;
  return n && n.classList.contains('message') ? n : null;
}

function nextMessage(li) {
  const n = li.nextElementSibling;
  return n && n.classList.contains('message') ? n : null;
}

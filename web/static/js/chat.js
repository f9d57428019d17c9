// chat.js: the chat page. It owns the page's picture of the world (rooms,
// presence, the open room), builds it from /api/state, and keeps it current
// from the events that connection.js delivers. Everything the user sees is
// drawn from that picture by sidebar.js, message-view.js and members.js.

import { api, path, ApiError } from './api.js';
import { $ } from './dom.js';
import { openConnection } from './connection.js';
import { backoff } from './poller.js';
import { MessageView } from './message-view.js';
import { MemberList } from './members.js';
import { Sidebar } from './sidebar.js';
import { mentions } from './message-html.js';
import * as commands from './commands.js';

const appRoot = $('app');

function nameOf(u) {
  return typeof u === 'string' ? u : (u && u.name) || '';
}

function roomNameOf(r) {
  return typeof r === 'string' ? r : (r && r.name) || '';
}

// hashRoom is the room named in the URL's fragment (#lobby), if any.
function hashRoom() {
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return '';
  }
}

class App {
  constructor() {
    this.me = { name: appRoot.dataset.user, role: appRoot.dataset.role };
    this.rooms = new Map(); // room name -> {room, unread, mentions, peer}
    this.presence = new Map(); // lower-case user name -> {name, status, at}
    this.current = null;
    this.lastId = null; // the newest event applied; null until the state is in
    this.pending = []; // events that arrived before the state
    this.started = false;
    this.composer = $('composer');
    this.input = $('composer-input');
    this.view = new MessageView(this);
    this.members = new MemberList(this);
    this.sidebar = new Sidebar(this);
    this.setupComposer();
    this.setupChrome();
    this.conn = openConnection((msg) => this.fromConnection(msg));
  }

  // ---- connection -------------------------------------------------------

  fromConnection(msg) {
    switch (msg.type) {
      case 'mode':
        $('conn-status').dataset.mode = msg.mode;
        break;
      case 'ready':
        // The shared poll has a cursor now; a state loaded after this moment
        // is at or past it, so no event can fall between the two.
        if (!this.started) {
          this.started = true;
          this.loadState();
        }
        break;
      case 'events':
        if (this.lastId == null) this.pending.push(...msg.events);
        else this.applyEvents(msg.events);
        break;
      case 'resync':
        this.applyState(msg.state, { resync: true });
        break;
      case 'status':
        this.showStatus(msg.status);
        break;
      case 'signed_out':
        this.leave('/login');
        break;
    }
  }

  // leave goes to another page once: the first reason wins. A ban arrives
  // as an event and the next poll then fails with 401; without this the
  // second navigation would replace the first and lose the reason.
  leave(url) {
    if (this.leaving) return;
    this.leaving = true;
    location.assign(url);
  }

  async loadState() {
    for (let attempt = 1; ; attempt++) {
      try {
        const state = await api('GET', '/api/state');
        this.applyState(state, { resync: false });
        return;
      } catch (err) {
        if (err.status === 401) {
          this.leave('/login');
          return;
        }
        await new Promise((r) => setTimeout(r, backoff(attempt)));
      }
    }
  }

  /** applyState replaces the page's picture with a snapshot. On a resync the
   * composer keeps whatever is typed in it. */
  applyState(state, { resync }) {
    if (state.user && state.user.name.toLowerCase() !== this.me.name.toLowerCase()) {
      // Another account signed in in this browser: this page is stale.
      location.reload();
      return;
    }
    if (state.user) this.me.role = state.user.role || this.me.role;
    this.lastId = state.cursor;
    const old = this.rooms;
    this.rooms = new Map();
    for (const room of state.rooms || []) {
      if (room.joined === false) continue;
      const prev = old.get(room.name);
      this.rooms.set(room.name, {
        room, unread: prev ? prev.unread : 0, mentions: prev ? prev.mentions : 0, peer: prev ? prev.peer : peerFromRoom(room, this.me.name),
      });
    }
    const now = performance.now();
    for (const u of state.presence || []) this.notePresence(u.name, u.status, now);
    if (state.user) this.notePresence(state.user.name, state.user.status || 'online', now);
    this.showMyStatus();

    for (const entry of this.rooms.values()) {
      if (entry.room.kind === 'direct' && !entry.peer) this.findPeer(entry.room.name);
    }
    const want = resync && this.rooms.has(this.current) ? this.current : this.roomFromHash();
    this.sidebar.render();
    if (want) this.openRoom(want, { force: true });
    else this.ensureSomeRoom();

    const buffered = this.pending.splice(0);
    this.applyEvents(buffered);
    if (resync) this.notice('The connection was re-established; the page was refreshed from the server.');
  }

  roomFromHash() {
    const wanted = hashRoom();
    if (wanted && this.rooms.has(wanted)) return wanted;
    if (this.rooms.has('lobby')) return 'lobby';
    const first = [...this.rooms.values()].find((e) => e.room.kind !== 'direct') || [...this.rooms.values()][0];
    return first ? first.room.name : null;
  }

  // A new account may be in no room yet: bring it to the lobby.
  async ensureSomeRoom() {
    try {
      await this.joinRoom('lobby');
    } catch {
      this.view.status.textContent = 'You are in no room yet. Use + next to Rooms to join or create one.';
    }
  }

  applyEvents(events) {
    let touched = false;
    for (const ev of events) {
      if (ev.id <= this.lastId) continue; // seen already (leader handover, resync)
      this.lastId = ev.id;
      try {
        touched = this.handle(ev) || touched;
      } catch (err) {
        console.error('chatd: event', ev, err);
      }
    }
    if (touched) this.sidebar.render();
    this.updateTitle();
  }

  // handle applies one event and reports whether the sidebar needs redrawing.
  handle(ev) {
    const me = this.me.name.toLowerCase();
    const user = nameOf(ev.user);
    const isMe = user.toLowerCase() === me;
    switch (ev.type) {
      case 'message': {
        const m = ev.message;
        const entry = this.rooms.get(m.room);
        if (!entry) {
          this.discoverRoom(m.room, m);
          return false;
        }
        const from = nameOf(m.user);
        if (entry.room.kind === 'direct' && !entry.peer && from.toLowerCase() !== me) entry.peer = from;
        if (m.room === this.current) this.view.upsert(m);
        if (from.toLowerCase() === me) return false;
        if (m.room !== this.current || document.hidden) {
          entry.unread++;
          if (entry.room.kind === 'direct' || mentions(m.text, this.me.name)) entry.mentions++;
          return true;
        }
        return false;
      }
      case 'message_edited':
        if (ev.message && ev.message.room === this.current) this.view.upsert(ev.message);
        return false;
      case 'message_deleted':
        this.view.remove(ev.message_id);
        return false;
      case 'join': {
        const room = roomNameOf(ev.room);
        if (isMe) {
          if (!this.rooms.has(room)) this.discoverRoom(room);
          return false;
        }
        const entry = this.rooms.get(room);
        if (entry && typeof entry.room.members === 'number') entry.room.members++;
        if (room === this.current) {
          this.members.membership('join', user);
          this.view.notice(`${user} joined.`, 'join');
        }
        return false;
      }
      case 'leave': {
        const room = roomNameOf(ev.room);
        if (isMe) {
          if (!this.rooms.delete(room)) return false;
          if (room === this.current) {
            this.current = null;
            const next = this.roomFromHash();
            if (next) this.openRoom(next);
            else this.ensureSomeRoom();
          }
          if (ev.kicked) this.notice(`You were removed from #${room}.`, 'error');
          return true;
        }
        const entry = this.rooms.get(room);
        if (entry && typeof entry.room.members === 'number') entry.room.members--;
        if (room === this.current) {
          this.members.membership('leave', user);
          this.view.notice(ev.kicked ? `${user} was removed.` : `${user} left.`, 'leave');
        }
        return false;
      }
      case 'login':
        return this.notePresence(user, 'online');
      case 'logout':
        return this.notePresence(user, 'offline');
      case 'presence':
        return this.notePresence(user, ev.status || (ev.user && ev.user.status) || 'online');
      case 'room_created':
      case 'room_updated': {
        // These carry the room's kind and topic beside its name.
        const room = roomNameOf(ev.room);
        if (!this.rooms.has(room)) return false;
        if (typeof ev.topic === 'string') this.updateRoom({ name: room, topic: ev.topic });
        else this.refreshRoom(room);
        return false;
      }
      case 'room_deleted': {
        const room = roomNameOf(ev.room);
        if (!this.rooms.delete(room)) return false;
        if (room === this.current) {
          this.current = null;
          const next = this.roomFromHash();
          if (next) this.openRoom(next);
          this.notice(`#${room} was deleted.`, 'error');
        }
        return true;
      }
      case 'banned':
        if (isMe) this.leave('/login?reason=banned');
        else this.notePresence(user, 'offline');
        return false;
    }
    return false;
  }

  // ---- rooms ------------------------------------------------------------

  roomLabel(name) {
    const entry = this.rooms.get(name);
    if (entry && entry.room.kind === 'direct') return entry.peer ? `@${entry.peer}` : 'a direct conversation';
    return `#${name}`;
  }

  /** openRoom shows a room: its history, members and topic. */
  openRoom(name, { focus = false, force = false } = {}) {
    const entry = this.rooms.get(name);
    if (!entry) return;
    this.closeDrawers();
    if (this.current === name && !force) {
      if (focus) this.focusComposer();
      return;
    }
    this.current = name;
    entry.unread = 0;
    entry.mentions = 0;
    if (hashRoom() !== name) history.replaceState(null, '', `#${encodeURIComponent(name)}`);
    this.showRoomHeader();
    this.sidebar.render();
    this.updateTitle();
    this.view.open(name);
    this.members.open(name);
    if (focus) this.focusComposer();
  }

  showRoomHeader() {
    const entry = this.rooms.get(this.current);
    if (!entry) return;
    $('room-title').textContent = this.roomLabel(this.current);
    const topic = entry.room.topic || '';
    const topicNode = $('room-topic');
    topicNode.textContent = topic;
    topicNode.title = topic;
    topicNode.hidden = !topic;
    this.input.placeholder = `Message ${this.roomLabel(this.current)}`;
  }

  /** addRoom records a room I am in (after a join or create). */
  addRoom(room) {
    if (!room || !room.name) return;
    const entry = this.rooms.get(room.name);
    if (entry) entry.room = { ...entry.room, ...room };
    else this.rooms.set(room.name, { room, unread: 0, mentions: 0, peer: peerFromRoom(room, this.me.name) });
    const e = this.rooms.get(room.name);
    if (room.kind === 'direct' && !e.peer) this.findPeer(room.name);
    this.sidebar.render();
  }

  /** updateRoom refreshes what is known about a room (topic, members). */
  updateRoom(room) {
    const entry = this.rooms.get(room.name);
    if (!entry) return;
    entry.room = { ...entry.room, ...room };
    if (room.name === this.current) this.showRoomHeader();
    this.sidebar.render();
  }

  async refreshRoom(name) {
    try {
      const body = await api('GET', path`/api/rooms/${name}`);
      if (body.room) this.updateRoom(body.room);
    } catch {
      // The next state or event will tell.
    }
  }

  // discoverRoom learns of a room I was just added to (a direct message
  // from someone new, or a join made in another tab).
  async discoverRoom(name, firstMessage) {
    let body;
    try {
      body = await api('GET', path`/api/rooms/${name}`);
    } catch {
      return;
    }
    if (!body.room) return;
    const known = this.rooms.has(name);
    this.addRoom(body.room);
    const entry = this.rooms.get(name);
    if (body.room.kind === 'direct') {
      const other = (body.members || []).find((u) => u.name.toLowerCase() !== this.me.name.toLowerCase());
      entry.peer = other ? other.name : this.me.name;
    }
    if (!known && firstMessage && nameOf(firstMessage.user).toLowerCase() !== this.me.name.toLowerCase()) {
      entry.unread++;
      if (body.room.kind === 'direct' || mentions(firstMessage.text, this.me.name)) entry.mentions++;
    }
    this.sidebar.render();
    this.updateTitle();
    if (!this.current) this.openRoom(name);
  }

  // findPeer learns who is on the other side of a direct room.
  async findPeer(name) {
    try {
      const body = await api('GET', path`/api/rooms/${name}`);
      const entry = this.rooms.get(name);
      if (!entry) return;
      const other = (body.members || []).find((u) => u.name.toLowerCase() !== this.me.name.toLowerCase());
      entry.peer = other ? other.name : this.me.name;
      if (other) this.notePresence(other.name, other.status);
      this.sidebar.render();
      if (name === this.current) this.showRoomHeader();
    } catch {
      // Shown by its room name until then.
    }
  }

  async joinRoom(name, { create = false } = {}) {
    let res;
    try {
      res = await api('POST', path`/api/rooms/${name}/join`);
    } catch (err) {
      if (!(create && err.status === 404)) throw err;
      res = await api('POST', '/api/rooms', { name, topic: '', private: false });
    }
    this.addRoom(res.room);
    this.openRoom(res.room.name, { focus: true });
  }

  async leaveRoom(name) {
    await api('POST', path`/api/rooms/${name}/leave`);
    this.rooms.delete(name);
    if (name === this.current) {
      this.current = null;
      const next = this.roomFromHash();
      if (next) this.openRoom(next);
    }
    this.sidebar.render();
    this.updateTitle();
  }

  async setTopic(name, topic) {
    const res = await api('PATCH', path`/api/rooms/${name}`, { topic });
    if (res && res.room) this.updateRoom(res.room);
  }

  /** startDirect opens the conversation with user, or the dialog to start one. */
  startDirect(user) {
    const key = user.toLowerCase();
    for (const entry of this.rooms.values()) {
      if (entry.room.kind === 'direct' && entry.peer && entry.peer.toLowerCase() === key) {
        this.openRoom(entry.room.name, { focus: true });
        return;
      }
    }
    this.sidebar.openDirect(user);
  }

  // ---- sending ----------------------------------------------------------

  /** sendText posts text to the open room. */
  async sendText(text) {
    const name = this.current;
    const entry = this.rooms.get(name);
    if (!entry) throw new commands.UsageError('Open a room first.');
    let res;
    if (entry.room.kind === 'direct' && entry.peer) {
      res = await api('POST', path`/api/users/${entry.peer}/messages`, { text });
    } else {
      res = await api('POST', path`/api/rooms/${name}/messages`, { text });
    }
    if (res && res.message && res.message.room === this.current) this.view.upsert(res.message);
  }

  /** sendDirect sends a direct message to user and opens the conversation. */
  async sendDirect(user, text) {
    const res = await api('POST', path`/api/users/${user}/messages`, { text });
    const m = res.message;
    if (!this.rooms.has(m.room)) {
      this.rooms.set(m.room, { room: { name: m.room, kind: 'direct', topic: '' }, unread: 0, mentions: 0, peer: user });
      this.refreshRoom(m.room);
    }
    const entry = this.rooms.get(m.room);
    if (!entry.peer) entry.peer = user;
    this.openRoom(m.room, { focus: true });
    this.view.upsert(m);
  }

  async setPresence(status) {
    await api('POST', '/api/presence', { status });
    this.notePresence(this.me.name, status);
    this.notice(status === 'away' ? 'You are marked away.' : 'You are back.');
  }

  notice(text, kind) {
    this.view.notice(text, kind);
  }

  // ---- presence ---------------------------------------------------------

  /** notePresence records a user's status. A status read from a snapshot
   * taken at time `at` does not overwrite a newer one from an event. */
  notePresence(name, status, at = performance.now()) {
    if (!name) return false;
    const key = name.toLowerCase();
    const prev = this.presence.get(key);
    if (prev && prev.at > at) return false;
    this.presence.set(key, { name, status, at });
    if (prev && prev.status === status) return false;
    this.members.render();
    if (key === this.me.name.toLowerCase()) this.showMyStatus();
    return true; // direct-message entries show the peer's status
  }

  statusOf(name) {
    const p = this.presence.get(String(name).toLowerCase());
    return p ? p.status : 'offline';
  }

  showMyStatus() {
    const status = this.statusOf(this.me.name);
    $('my-status').dataset.status = status;
    $('my-status-text').textContent = status;
    const toggle = $('away-toggle');
    toggle.textContent = status === 'away' ? 'Set online' : 'Set away';
    toggle.dataset.next = status === 'away' ? 'online' : 'away';
  }

  // ---- title, status, chrome ---------------------------------------------

  updateTitle() {
    let unread = 0;
    let ment = 0;
    for (const e of this.rooms.values()) {
      unread += e.unread;
      ment += e.mentions;
    }
    let prefix = '';
    if (unread || ment) prefix = ment ? `(${unread}) @${ment} ` : `(${unread}) `;
    const where = this.current ? `${this.roomLabel(this.current)} · ` : '';
    document.title = `${prefix}${where}chatd`;
  }

  showStatus(status) {
    const node = $('conn-status');
    node.dataset.state = status.state;
    clearInterval(this.statusTimer);
    const render = () => {
      if (status.state === 'connected') node.textContent = 'Connected';
      else if (status.state === 'connecting') node.textContent = 'Connecting…';
      else {
        const secs = Math.max(0, Math.ceil(((status.retryAt || 0) - Date.now()) / 1000));
        node.textContent = secs > 0 ? `Reconnecting… retry in ${secs} s` : 'Reconnecting…';
      }
      node.title = status.error || '';
    };
    render();
    if (status.state === 'reconnecting') this.statusTimer = setInterval(render, 1000);
  }

  setupChrome() {
    $('logout').addEventListener('click', async () => {
      try {
        await api('POST', '/api/logout');
      } catch {
        // Signed out or not, the login page is where to go.
      }
      location.assign('/login');
    });
    $('away-toggle').addEventListener('click', async (ev) => {
      try {
        await this.setPresence(ev.currentTarget.dataset.next || 'away');
      } catch (err) {
        this.notice(`Could not change your status: ${err.message}`, 'error');
      }
    });
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) return;
      const entry = this.rooms.get(this.current);
      if (entry && (entry.unread || entry.mentions)) {
        entry.unread = 0;
        entry.mentions = 0;
        this.sidebar.render();
        this.updateTitle();
      }
    });
    window.addEventListener('hashchange', () => {
      const name = hashRoom();
      if (this.rooms.has(name)) this.openRoom(name);
    });

    const drawers = [['toggle-sidebar', 'sidebar'], ['toggle-members', 'members']];
    const scrim = $('scrim');
    for (const [buttonId, drawerId] of drawers) {
      $(buttonId).addEventListener('click', () => {
        const open = !$(drawerId).classList.contains('open');
        this.closeDrawers();
        if (open) {
          $(drawerId).classList.add('open');
          $(buttonId).setAttribute('aria-expanded', 'true');
          scrim.hidden = false;
          const first = $(drawerId).querySelector('button');
          if (first) first.focus();
        }
      });
    }
    scrim.addEventListener('click', () => this.closeDrawers());
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && !scrim.hidden) {
        this.closeDrawers();
        return;
      }
      // Alt+Up / Alt+Down move between rooms.
      if (ev.altKey && (ev.key === 'ArrowUp' || ev.key === 'ArrowDown')) {
        const buttons = [...document.querySelectorAll('#sidebar button[data-room]')];
        const at = buttons.findIndex((b) => b.dataset.room === this.current);
        const next = buttons[at + (ev.key === 'ArrowUp' ? -1 : 1)];
        if (next) {
          ev.preventDefault();
          this.openRoom(next.dataset.room, { focus: true });
        }
      }
    });
  }

  closeDrawers() {
    for (const [buttonId, drawerId] of [['toggle-sidebar', 'sidebar'], ['toggle-members', 'members']]) {
      $(drawerId).classList.remove('open');
      $(buttonId).setAttribute('aria-expanded', 'false');
    }
    $('scrim').hidden = true;
  }

  // ---- composer ---------------------------------------------------------

  composerBusy() {
    return this.input.value.trim() !== '';
  }

  focusComposer() {
    this.input.focus();
  }

  setupComposer() {
    const input = this.input;
    const grow = () => {
      input.style.height = 'auto';
      input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
    };
    input.addEventListener('input', grow);
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.composer.requestSubmit();
      } else if (ev.key === 'ArrowUp' && !input.value && !ev.shiftKey && !ev.altKey) {
        if (this.view.editLast()) ev.preventDefault();
      }
    });
    this.composer.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const raw = input.value;
      const text = raw.replace(/\s+$/, '');
      if (!text.trim()) return;
      // Clear at once so typing can go on; put the text back on failure.
      input.value = '';
      grow();
      try {
        const cmd = commands.parse(text.trimStart());
        if (cmd) await commands.run(this, cmd);
        else await this.sendText(text.startsWith('//') ? text.slice(1) : text);
      } catch (err) {
        if (!input.value) {
          input.value = raw;
          grow();
        }
        this.notice(describeError(err), 'error');
      }
    });
  }
}

function describeError(err) {
  if (err instanceof commands.UsageError) return err.message;
  if (err instanceof ApiError) {
    if (err.code === 'rate_limited') {
      return `You are sending too fast. ${err.retryAfter ? `Wait ${err.retryAfter} s. ` : ''}(${err.message})`;
    }
    return err.message;
  }
  return String(err && err.message ? err.message : err);
}

// peerFromRoom reads the other user of a direct room from its "peers" (the
// two users; one when talking to oneself).
function peerFromRoom(room, me) {
  if (room.kind !== 'direct' || !Array.isArray(room.peers) || !room.peers.length) return null;
  const other = room.peers.map(nameOf).find((n) => n.toLowerCase() !== me.toLowerCase());
  return other || me;
}

new App();

// connection.js: how a page gets its events. One long poll serves the whole
// browser. In order of preference:
//
//  1. 'shared-worker': a SharedWorker (poller-worker.js) polls for every tab
//     and same-origin frame;
//  2. 'leader' / 'follower': without SharedWorker, the tabs elect a leader
//     with the Web Locks API. The leader polls and relays over a
//     BroadcastChannel; when its tab closes the lock passes to the next tab
//     in the queue, which resumes from the last cursor the old leader relayed;
//  3. 'direct': without either, the page polls by itself.
//
// Whatever the mode, the page sees the messages documented in
// poller-worker.js, plus {type: 'mode', mode}. When the last tab of the
// browser goes away it tells the server with a beacon to /api/disconnect,
// so other users see it leave at once rather than after the presence timeout.
// (Tabs closed together may each believe another remains and send none; the
// server then notices the aborted poll and lets the browser go within
// seconds.)

import { Poller } from './poller.js';

// Under the page's Trusted Types policy a worker's URL must be vouched for:
// only our own versioned static scripts are.
const workerURLs = self.trustedTypes
  ? trustedTypes.createPolicy('chatd-worker-url', {
    createScriptURL(url) {
      const u = new URL(url, location.href);
      if (u.origin !== location.origin || !u.pathname.startsWith('/static/')) throw new TypeError(`chatd: refusing worker script ${url}`);
      return u.href;
    },
  })
  : { createScriptURL: (url) => url };

const LOCK_NAME = 'chatd-poll-leader';
const CHANNEL_NAME = 'chatd-poll';

function randomId() {
  if (self.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

// tabId names the browser tab a page lives in: a page and its same-origin
// frames share one, so "am I the last tab?" counts tabs, not frames.
function tabId() {
  try {
    const top = window.top;
    if (!top.chatdTabId) top.chatdTabId = randomId();
    return top.chatdTabId;
  } catch {
    return randomId();
  }
}

/** openConnection starts receiving events for this page and returns a handle
 * with wake() (retry now) and the current mode. onMessage receives every
 * message of the protocol. */
export function openConnection(onMessage) {
  const tab = tabId();
  let link = null;
  const useLeader = () => {
    if (self.BroadcastChannel && navigator.locks) return new LeaderLink(tab, onMessage);
    return new DirectLink(onMessage);
  };
  if (typeof SharedWorker === 'function') {
    link = new WorkerLink(tab, onMessage, () => {
      link = useLeader();
    });
  } else {
    link = useLeader();
  }

  addEventListener('pagehide', () => {
    const last = link.tabs() <= 1;
    link.bye();
    // A beacon is a same-origin POST that outlives the page. The server ends
    // this browser's pending poll and marks it gone.
    if (last && navigator.sendBeacon) navigator.sendBeacon('/api/disconnect');
  });
  // A page restored from the back/forward cache has said goodbye already.
  addEventListener('pageshow', (ev) => {
    if (ev.persisted) location.reload();
  });
  addEventListener('online', () => link.wake());

  return {
    wake: () => link.wake(),
    get mode() {
      return link.mode;
    },
  };
}

class WorkerLink {
  constructor(tab, onMessage, fallback) {
    this.mode = 'shared-worker';
    this.peerTabs = 1;
    let heard = false;
    let failed = false;
    const fail = () => {
      if (heard || failed) return;
      failed = true;
      this.port = null;
      fallback();
    };
    try {
      const url = workerURLs.createScriptURL(new URL('./poller-worker.js', import.meta.url).href);
      const worker = new SharedWorker(url, { type: 'module', name: 'chatd-poller' });
      worker.addEventListener('error', fail);
      this.port = worker.port;
      this.port.addEventListener('message', (ev) => {
        heard = true;
        const msg = ev.data || {};
        if (msg.type === 'peers') this.peerTabs = msg.tabs;
        onMessage(msg);
      });
      this.port.start();
      this.port.postMessage({ type: 'hello', tab });
      onMessage({ type: 'mode', mode: this.mode });
    } catch {
      queueMicrotask(fail);
    }
  }

  tabs() {
    return this.peerTabs;
  }

  bye() {
    if (this.port) this.port.postMessage({ type: 'bye' });
  }

  wake() {
    if (this.port) this.port.postMessage({ type: 'wake' });
  }
}

class LeaderLink {
  constructor(tab, onMessage) {
    this.id = randomId();
    this.tab = tab;
    this.onMessage = onMessage;
    this.mode = 'follower';
    this.peers = new Map(); // page id -> tab id
    this.cursor = null; // the last cursor the leader relayed
    this.status = { state: 'connecting' };
    this.poller = null;
    this.channel = new BroadcastChannel(CHANNEL_NAME);
    this.channel.addEventListener('message', (ev) => this.fromChannel(ev.data || {}));
    this.channel.postMessage({ type: 'hello', from: this.id, tab });
    onMessage({ type: 'mode', mode: this.mode });
    // The lock is held until this page goes away; the browser then grants
    // it to the next page in the queue.
    navigator.locks.request(LOCK_NAME, () => this.lead()).catch(() => {});
  }

  lead() {
    this.mode = 'leader';
    this.onMessage({ type: 'mode', mode: this.mode });
    this.poller = new Poller({
      ready: (cursor) => this.relay({ type: 'ready', cursor }),
      events: (events, cursor) => this.relay({ type: 'events', events, cursor }),
      status: (status) => this.relay({ type: 'status', status }),
      resync: (state) => this.relay({ type: 'resync', state }),
      signedOut: (reason) => this.relay({ type: 'signed_out', reason }),
    });
    const resume = this.cursor;
    this.poller.start(resume);
    // Resuming from the old leader's cursor: every page that followed it has
    // everything up to there, so it is a safe point to announce.
    if (resume != null) this.relay({ type: 'ready', cursor: resume });
    return new Promise(() => {});
  }

  // relay sends a message to this page and to every other page.
  relay(msg) {
    this.note(msg);
    this.channel.postMessage(msg);
    this.onMessage(msg);
  }

  note(msg) {
    if (msg.type === 'events' || msg.type === 'ready') this.cursor = msg.cursor;
    if (msg.type === 'resync') this.cursor = msg.state.cursor;
    if (msg.type === 'status') this.status = msg.status;
  }

  fromChannel(msg) {
    switch (msg.type) {
      case 'hello':
        this.peers.set(msg.from, msg.tab);
        this.channel.postMessage({ type: 'here', from: this.id, tab: this.tab });
        if (this.mode === 'leader') {
          this.channel.postMessage({ type: 'status', status: this.status });
          if (this.cursor != null) this.channel.postMessage({ type: 'ready', cursor: this.cursor });
        }
        this.peersChanged();
        return;
      case 'here':
        this.peers.set(msg.from, msg.tab);
        this.peersChanged();
        return;
      case 'bye':
        this.peers.delete(msg.from);
        this.peersChanged();
        return;
    }
    if (this.mode === 'leader') return; // another leader's stale message
    this.note(msg);
    this.onMessage(msg);
  }

  peersChanged() {
    this.onMessage({ type: 'peers', tabs: this.tabs() });
  }

  tabs() {
    return new Set([this.tab, ...this.peers.values()]).size;
  }

  bye() {
    this.channel.postMessage({ type: 'bye', from: this.id });
    if (this.poller) this.poller.stop();
  }

  wake() {
    if (this.poller) this.poller.wake();
  }
}

class DirectLink {
  constructor(onMessage) {
    this.mode = 'direct';
    onMessage({ type: 'mode', mode: this.mode });
    this.poller = new Poller({
      ready: () => onMessage({ type: 'ready' }),
      events: (events, cursor) => onMessage({ type: 'events', events, cursor }),
      status: (status) => onMessage({ type: 'status', status }),
      resync: (state) => onMessage({ type: 'resync', state }),
      signedOut: (reason) => onMessage({ type: 'signed_out', reason }),
    });
    this.poller.start(null);
  }

  tabs() {
    return 1;
  }

  bye() {
    this.poller.stop();
  }

  wake() {
    this.poller.wake();
  }
}

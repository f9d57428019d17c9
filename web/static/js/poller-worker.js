// poller-worker.js: the SharedWorker that owns this browser's one long poll.
// Every chat tab and same-origin frame connects a port; the worker polls
// /api/events once for all of them and copies each batch to every port, so a
// browser with five tabs costs the server one pending request, not five.
//
// Port protocol (page -> worker):
//   {type: 'hello', tab}  a page joins; tab groups a page with its frames
//   {type: 'bye'}         the page is going away
//   {type: 'wake'}        the page saw the network come back: retry now
// (worker -> page):
//   {type: 'ready'}                   polling has a cursor: load /api/state now
//   {type: 'events', events, cursor}  a batch, oldest first
//   {type: 'status', status}          connecting / connected / reconnecting
//   {type: 'resync', state}           the cursor was lost: start over from state
//   {type: 'signed_out', reason}      the session is gone
//   {type: 'peers', tabs}             how many tabs share the connection

import { Poller } from './poller.js';

const ports = new Map(); // MessagePort -> tab id
let ready = false;
let status = { state: 'connecting' };

function broadcast(msg) {
  for (const port of ports.keys()) port.postMessage(msg);
}

function peers() {
  broadcast({ type: 'peers', tabs: new Set(ports.values()).size });
}

const poller = new Poller({
  ready() {
    ready = true;
    broadcast({ type: 'ready' });
  },
  events(events, cursor) {
    broadcast({ type: 'events', events, cursor });
  },
  status(s) {
    status = s;
    broadcast({ type: 'status', status: s });
  },
  resync(state) {
    broadcast({ type: 'resync', state });
  },
  signedOut(reason) {
    reset();
    broadcast({ type: 'signed_out', reason });
  },
});

// reset forgets the cursor, so the next page to connect starts from a fresh
// state (possibly of another account signed in meanwhile).
function reset() {
  poller.stop();
  poller.cursor = null;
  ready = false;
  status = { state: 'connecting' };
}

function drop(port) {
  if (!ports.delete(port)) return;
  if (ports.size === 0) {
    // The last page is gone; it sent the disconnect beacon itself. Polling
    // on would only mark this browser alive again.
    reset();
    return;
  }
  peers();
}

self.addEventListener('connect', (ev) => {
  const port = ev.ports[0];
  port.addEventListener('message', (m) => {
    const msg = m.data || {};
    switch (msg.type) {
      case 'hello':
        ports.set(port, String(msg.tab || ''));
        port.postMessage({ type: 'status', status });
        if (ready) port.postMessage({ type: 'ready' });
        poller.start(poller.cursor);
        peers();
        break;
      case 'bye':
        drop(port);
        break;
      case 'wake':
        poller.wake();
        break;
    }
  });
  // Newer browsers tell a worker when a port's page died without a 'bye'.
  port.addEventListener('close', () => drop(port));
  port.start();
});

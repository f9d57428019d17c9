// poller.js: the long-poll loop that follows the server's event cursor.
// Exactly one Poller runs per browser: inside the shared worker, or in the
// tab elected leader when shared workers are missing (see connection.js).

import { api, ApiError } from './api.js';

const POLL_TIMEOUT_S = 25;
// A poll that outlives the server's timeout by this much is presumed lost
// (a half-open connection after sleep or a network change).
const WATCHDOG_MS = (POLL_TIMEOUT_S + 15) * 1000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15000;
// The contract asks a superseded client to wait at least 2 s.
const SUPERSEDED_WAIT_MS = 2000;

/** backoff returns the wait before retry number n (1-based): exponential,
 * capped, with "equal jitter" so a restarted server is not hit by every
 * browser at the same instant. */
export function backoff(n) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(n - 1, 10));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/**
 * Poller follows /api/events from a cursor and reports to its handlers:
 *   ready(cursor)      it has a cursor and every later event will be reported
 *   events(list, cur)  a batch of events, oldest first, and the new cursor
 *   status(s)          {state: 'connecting'|'connected'|'reconnecting', retryAt?, error?}
 *   resync(state)      the cursor was lost (410, or 400 after a database reset):
 *                      here is a fresh /api/state; events continue after it
 *   signedOut(reason)  the session is gone; polling has stopped
 */
export class Poller {
  constructor(handlers) {
    this.h = handlers;
    this.cursor = null;
    this.active = false;
    // gen tells a loop that was stopped (and maybe restarted since) to end;
    // an aborted fetch settles later than stop() returns.
    this.gen = 0;
    this.failures = 0;
    this.abort = null;
    this.wakeUp = null;
    this.statusNow = { state: 'connecting' };
  }

  /** start begins polling from cursor, or from a fresh /api/state when
   * cursor is null. Starting a running poller does nothing. */
  start(cursor = null) {
    if (this.active) return;
    this.active = true;
    this.cursor = cursor;
    this.failures = 0;
    this.loop(++this.gen);
  }

  /** stop ends the loop and aborts the pending request. */
  stop() {
    this.active = false;
    this.gen++;
    if (this.abort) this.abort.abort();
    if (this.wakeUp) this.wakeUp();
  }

  /** wake cuts a backoff wait short, e.g. when the browser comes back online. */
  wake() {
    if (this.wakeUp) this.wakeUp();
  }

  setStatus(s) {
    const prev = this.statusNow;
    if (prev.state === s.state && prev.retryAt === s.retryAt) return;
    this.statusNow = s;
    this.h.status(s);
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  async failed(err) {
    this.failures++;
    const wait = err.retryAfter ? err.retryAfter * 1000 : backoff(this.failures);
    this.setStatus({ state: 'reconnecting', retryAt: Date.now() + wait, error: err.message });
    await this.sleep(wait);
  }

  loadState() {
    this.abort = new AbortController();
    return api('GET', '/api/state', undefined, { signal: this.abort.signal });
  }

  async loop(gen) {
    while (this.gen === gen) {
      let err = null;
      try {
        await this.pollOnce(gen);
      } catch (e) {
        err = e;
      }
      if (this.gen !== gen) return;
      if (!err) continue;
      if (err.name === 'AbortError') {
        // The watchdog fired: the request hung. Count it as a failure.
        await this.failed(new ApiError(0, 'timeout', 'The server stopped answering.'));
      } else if (!(err instanceof ApiError)) {
        await this.failed(new ApiError(0, 'client', String(err)));
      } else {
        await this.handleError(err, gen);
      }
    }
  }

  // pollOnce makes one long poll (after loading the state if there is no
  // cursor yet) under a watchdog timer.
  async pollOnce(gen) {
    const watchdog = setTimeout(() => this.abort && this.abort.abort(), WATCHDOG_MS);
    try {
      if (this.cursor == null) {
        const state = await this.loadState();
        if (this.gen !== gen) return;
        this.cursor = state.cursor;
        this.h.ready(this.cursor, state);
      }
      this.abort = new AbortController();
      const body = await api('GET', `/api/events?cursor=${this.cursor}&timeout=${POLL_TIMEOUT_S}`,
        undefined, { signal: this.abort.signal });
      if (this.gen !== gen) return;
      this.failures = 0;
      this.setStatus({ state: 'connected' });
      const events = body.events || [];
      if (typeof body.cursor === 'number') this.cursor = body.cursor;
      if (events.length) this.h.events(events, this.cursor);
    } finally {
      clearTimeout(watchdog);
    }
  }

  async handleError(err, gen) {
    switch (err.status) {
      case 409: // superseded: another poll of this client took over
        await this.sleep(SUPERSEDED_WAIT_MS + Math.random() * 1000);
        return;
      case 410: // resync_required: the cursor fell out of the replay window
      case 400: // a cursor from the future: the database was replaced
      case 401: // maybe signed in again as someone else in another tab
      case 403:
        await this.resync(err, gen);
        return;
      default:
        await this.failed(err);
    }
  }

  // resync loads a fresh state. A 401 there means the session really is gone.
  async resync(cause, gen) {
    // A server that keeps refusing the fresh cursor must not be hammered.
    this.failures++;
    if (this.failures > 1) await this.sleep(backoff(this.failures - 1));
    if (this.gen !== gen) return;
    try {
      const state = await this.loadState();
      if (this.gen !== gen) return;
      this.cursor = state.cursor;
      this.h.resync(state);
    } catch (err) {
      if (this.gen !== gen) return;
      if (err.status === 401 || err.status === 403) {
        this.stop();
        this.h.signedOut(err.message || cause.message);
        return;
      }
      await this.failed(err.name === 'AbortError' ? cause : err);
    }
  }
}

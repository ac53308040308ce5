// The live connection: one WebSocket to /api/v1/live for the whole page, reconnecting by itself
// (with `since` = the last sequence number seen, so nothing is missed) and reporting its state.

import { getToken } from './api.js';

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 8000;

/**
 * Events: `state` (detail: "connecting" | "live" | "offline"), `message` (detail: a parsed server
 * message: execution_started, execution_finished, step_started, step_finished), `lagged`
 * (the stream skipped messages: reload what is shown).
 */
export class Live extends EventTarget {
  constructor() {
    super();
    this.state = 'offline';
    this.seq = null;
    this.retryMs = RETRY_MIN_MS;
    this.ws = null;
    this.timer = 0;
    this.nextRetryAt = 0;
  }

  /** Opens the connection (again). */
  connect() {
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
    this.setState('connecting');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const since = this.seq === null ? '' : `?since=${this.seq}`;
    const protocols = ['xray'];
    const token = getToken();
    if (token) protocols.push(`bearer.${token}`);
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${location.host}/api/v1/live${since}`, protocols);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.retryMs = RETRY_MIN_MS;
      this.setState('live');
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (typeof message.seq === 'number') this.seq = Math.max(this.seq ?? 0, message.seq);
      if (message.type === 'hello') return;
      if (message.type === 'lagged') {
        this.dispatchEvent(new CustomEvent('lagged', { detail: message }));
        return;
      }
      this.dispatchEvent(new CustomEvent('message', { detail: message }));
    };
    ws.onclose = () => {
      this.ws = null;
      this.retry();
    };
  }

  retry() {
    this.nextRetryAt = Date.now() + this.retryMs;
    this.setState('offline');
    this.timer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
  }

  /** Calls `fn(message)` for every message until the returned function is called. */
  subscribe(fn) {
    const listener = (event) => fn(event.detail);
    this.addEventListener('message', listener);
    return () => this.removeEventListener('message', listener);
  }

  /** Calls `fn()` when the stream lagged (skipped messages). */
  onLagged(fn) {
    this.addEventListener('lagged', fn);
    return () => this.removeEventListener('lagged', fn);
  }
}

export const live = new Live();

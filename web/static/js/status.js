// The shared /v1/status reader. Events only say that something changed; the
// counts come from the status, which the engine computes from its counters
// in O(1), so refreshing it is cheap even with a million clients. Refreshes
// are coalesced (at most one per second while events flow) plus a slow
// periodic one, so the page never polls the fleet itself.

import { api } from "./api.js";

const MIN_GAP = 1000; // ms between two refreshes triggered by events
const PERIOD = 5000; // ms between periodic refreshes

export class StatusFeed {
  constructor() {
    this.last = null;
    this.listeners = new Set();
    this.errorListeners = new Set();
    this.inFlight = false;
    this.again = false;
    this.lastAt = 0;
    this.timer = 0;
    this.periodic = 0;
  }

  on(fn) {
    this.listeners.add(fn);
    if (this.last) fn(this.last);
    return () => this.listeners.delete(fn);
  }

  onError(fn) {
    this.errorListeners.add(fn);
  }

  start() {
    if (this.periodic) return;
    this.periodic = setInterval(() => this.refresh(), PERIOD);
    this.refresh();
  }

  stop() {
    clearInterval(this.periodic);
    clearTimeout(this.timer);
    this.periodic = 0;
    this.timer = 0;
    this.last = null;
  }

  // poke asks for a refresh soon, coalescing bursts of events.
  poke() {
    if (this.timer || !this.periodic) return;
    const wait = Math.max(0, this.lastAt + MIN_GAP - Date.now());
    this.timer = setTimeout(() => {
      this.timer = 0;
      this.refresh();
    }, wait);
  }

  async refresh() {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    this.lastAt = Date.now();
    try {
      const s = await api("GET", "/v1/status");
      if (!this.periodic) return;
      this.last = s;
      for (const fn of this.listeners) fn(s);
    } catch (e) {
      for (const fn of this.errorListeners) fn(e);
    } finally {
      this.inFlight = false;
      if (this.again) {
        this.again = false;
        this.poke();
      }
    }
  }
}

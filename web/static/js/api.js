// The admin API client: bearer token, JSON, stable error codes, and the
// server-sent event stream read with fetch() (EventSource cannot send the
// Authorization header, and the token must never go into a URL).

const TOKEN_KEY = "jumpfleet.adminToken";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(t) {
  sessionStorage.setItem(TOKEN_KEY, t);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// ApiError carries the API's {error: {code, message}} answer.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// onUnauthorized is called when the API refuses the token (expired session,
// token reset on the broker): the app goes back to the login page.
let unauthorizedHook = () => {};
export function onUnauthorized(fn) {
  unauthorizedHook = fn;
}

// api sends one request and returns the decoded JSON answer.
export async function api(method, path, body, tok = token()) {
  const init = { method, headers: { Authorization: "Bearer " + tok, Accept: "application/json" }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network", "the broker cannot be reached (" + e.message + ")");
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : { code: "http_" + res.status, message: text.trim() || res.statusText };
    if (res.status === 401 && tok === token()) unauthorizedHook();
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

// EventStream is the one live connection to GET /v1/events shared by every
// page. It reconnects with backoff and resumes after the last event id it
// saw; the API answers "gap" when events were missed, and listeners then
// re-read the state instead of trusting their increments.
export class EventStream {
  constructor(types) {
    this.types = types;
    this.listeners = new Set();
    this.stateListeners = new Set();
    this.lastId = "";
    this.ctrl = null;
    this.running = false;
    this.retry = 500;
    this.timer = 0;
  }

  // on adds fn(event) for every event ({id, type, ...} or {type: "gap"});
  // it returns a function that removes it.
  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  // onState adds fn(connected bool).
  onState(fn) {
    this.stateListeners.add(fn);
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    if (this.ctrl) this.ctrl.abort();
    this.ctrl = null;
    this.lastId = "";
    this.setState(false);
  }

  setState(on) {
    for (const fn of this.stateListeners) fn(on);
  }

  emit(ev) {
    for (const fn of this.listeners) {
      try {
        fn(ev);
      } catch (e) {
        console.error("event listener", e);
      }
    }
  }

  async connect() {
    if (!this.running) return;
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    const headers = { Authorization: "Bearer " + token(), Accept: "text/event-stream" };
    if (this.lastId) headers["Last-Event-ID"] = this.lastId;
    const q = this.types ? "?types=" + encodeURIComponent(this.types.join(",")) : "";
    try {
      const res = await fetch("/v1/events" + q, { headers, signal: ctrl.signal, cache: "no-store" });
      if (res.status === 401) {
        unauthorizedHook();
        return;
      }
      if (!res.ok || !res.body) throw new Error("HTTP " + res.status);
      this.setState(true);
      this.retry = 500;
      await this.read(res.body.getReader());
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    if (!this.running || ctrl.signal.aborted) return;
    this.setState(false);
    // The stream ends when the broker restarts: come back with jittered
    // backoff so a restarted broker is not hit by every open tab at once.
    const wait = this.retry * (0.5 + Math.random());
    this.retry = Math.min(this.retry * 2, 15000);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  // read parses the text/event-stream format (WHATWG HTML, 9.2.6).
  async read(reader) {
    const dec = new TextDecoder();
    let buf = "";
    let ev = { id: "", event: "", data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") {
          this.dispatch(ev);
          ev = { id: "", event: "", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const c = line.indexOf(":");
        const field = c < 0 ? line : line.slice(0, c);
        let val = c < 0 ? "" : line.slice(c + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "id") ev.id = val;
        else if (field === "event") ev.event = val;
        else if (field === "data") ev.data.push(val);
      }
    }
  }

  dispatch(ev) {
    if (ev.data.length === 0) return;
    if (ev.id) this.lastId = ev.id;
    let body;
    try {
      body = JSON.parse(ev.data.join("\n"));
    } catch {
      return;
    }
    if (ev.event === "gap") {
      this.emit({ type: "gap" });
      return;
    }
    this.emit(body);
  }
}

// localStorage, when the browser lets us use it (private modes and sandboxed frames
// may not): otherwise the same interface in memory, lost with the page.
import { ID_PATTERN, randomId } from "./util.js";

const PREFIX = "feedback-widget:";

function openBackend() {
  try {
    const ls = window.localStorage;
    const probe = `${PREFIX}probe`;
    ls.setItem(probe, "1");
    ls.removeItem(probe);
    return ls;
  } catch {
    return null;
  }
}

export class Store {
  constructor() {
    this.ls = openBackend();
    this.memory = new Map();
  }

  read(key) {
    let raw = this.memory.get(key) ?? null;
    if (this.ls) {
      try {
        raw = this.ls.getItem(PREFIX + key);
      } catch {
        // fall back to what this page wrote
      }
    }
    if (raw == null) return null;
    try {
      return JSON.parse(raw);
    } catch {
      return null;
    }
  }

  write(key, value) {
    const raw = JSON.stringify(value);
    this.memory.set(key, raw);
    if (!this.ls) return;
    try {
      this.ls.setItem(PREFIX + key, raw);
    } catch {
      // quota or a revoked permission: the in-memory copy keeps this page working
    }
  }

  remove(key) {
    this.memory.delete(key);
    if (!this.ls) return;
    try {
      this.ls.removeItem(PREFIX + key);
    } catch {
      // a revoked permission: nothing more to do
    }
  }

  // The visitor id is created once per browser and kept (until "delete my data").
  visitor() {
    const stored = this.read("visitor");
    if (typeof stored === "string" && ID_PATTERN.test(stored)) return stored;
    const id = randomId(16);
    this.write("visitor", id);
    return id;
  }

  // After "delete my data": the erased visitor id `old` is dropped and a new random one
  // made, unless another tab of this browser already replaced it (it heard of the erase
  // first): then this tab takes that one, and all tabs end up as the same new visitor.
  renewVisitor(old) {
    const stored = this.read("visitor");
    if (typeof stored === "string" && ID_PATTERN.test(stored) && stored !== old) return stored;
    const id = randomId(16); // one write: other tabs see the old id replaced by this one
    this.write("visitor", id);
    return id;
  }

  // Calls back with (old id, new id) when another tab of this browser replaces the
  // visitor id (only "delete my data" does).
  onVisitorChange(callback) {
    if (!this.ls || typeof window === "undefined") return;
    window.addEventListener("storage", (e) => {
      if (e.storageArea !== this.ls || e.key !== `${PREFIX}visitor`) return;
      const parse = (raw) => {
        try {
          return raw == null ? null : JSON.parse(raw);
        } catch {
          return null;
        }
      };
      const before = parse(e.oldValue);
      const after = parse(e.newValue);
      if (typeof after === "string" && ID_PATTERN.test(after) && after !== before) {
        callback(before, after);
      }
    });
  }
}

// What the widget remembers per conversation (per server and visitor or signed-in user).
// The conversation itself is never stored in the browser: the server is its one copy
// (a shared computer keeps no transcript, and "delete my data" leaves none behind: the
// widget then drops this record too, see Widget.forget), so
// each page load asks for the whole history (last_seq 0) and later reconnects of the
// same page ask only for what they missed. Kept: the highest seq this browser has
// shown (to count unread messages), the unread count, the unacknowledged inputs (so a
// reload while offline loses nothing) and the language the server last reported.
export class Conversation {
  constructor(store, key) {
    this.store = store;
    this.key = key;
    const saved = store.read(key) || {};
    this.lastSeq = 0; // shown on this page: the last_seq of a reconnect
    this.readSeq = Number.isInteger(saved.read_seq) && saved.read_seq > 0 ? saved.read_seq : 0;
    this.unread = Number.isInteger(saved.unread) && saved.unread > 0 ? saved.unread : 0;
    this.outbox = Array.isArray(saved.outbox) ? saved.outbox.filter(isOutboxEntry) : [];
    this.locale = typeof saved.locale === "string" ? saved.locale : null;
  }

  save() {
    this.store.write(this.key, {
      read_seq: Math.max(this.readSeq, this.lastSeq),
      unread: this.unread,
      outbox: this.outbox,
      locale: this.locale,
    });
  }
}

function isOutboxEntry(e) {
  return (
    e &&
    typeof e === "object" &&
    typeof e.client_id === "string" &&
    typeof e.kind === "string" &&
    typeof e.value === "string"
  );
}

// The widget's behaviour: the protocol of docs/widget-protocol.md on one side, the View
// on the other.
import { io } from "socket.io-client";
import { Store, Conversation } from "./store.js";
import { Strings, fetchStrings } from "./strings.js";
import { View } from "./view.js";
import { isObject, randomId, sleep, str, toBcp47 } from "./util.js";

const ACK_TIMEOUT_MS = 15000;
const TYPING_REFRESH_MS = 4000; // while typing, say so again this often
const TYPING_IDLE_MS = 5000; // after this long without a keystroke, stop saying so
const STAFF_TYPING_MAX_MS = 15000; // hide the indicator if the "stopped" event is lost
const RETRY_MIN_MS = 2000;
const RETRY_MAX_MS = 60000;
const STALE_ANSWER_MS = 60 * 60 * 1000;
const GAP_WAIT_MS = 2000; // a skipped message number: this long for its push, then ask
const GAP_WAIT_MAX_MS = 60000; // asked again, less and less often, while it stays missing

class Offline extends Error {}
class Timeout extends Error {}

// Lone surrogates are refused by the server; a pasted half of an emoji becomes U+FFFD.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const wellFormed = (s) => s.replace(LONE_SURROGATE, "\uFFFD");

function isMessage(m) {
  return isObject(m) && Number.isInteger(m.seq) && m.seq > 0 && typeof m.author === "string";
}

function isPrompt(p) {
  return isObject(p) && typeof p.text === "string";
}

function samePrompt(a, b) {
  return !!a && !!b && JSON.stringify(a) === JSON.stringify(b);
}

export class Widget {
  constructor(options, defaultServer) {
    const server = str(options.server) || defaultServer;
    this.server = server.replace(/\/+$/, "");
    this.user = options.user == null || options.user === "" ? null : String(options.user);
    this.signature = this.user && options.signature ? String(options.signature) : null;
    this.expires = this.user && Number.isInteger(options.expires) ? options.expires : null;
    this.hostLocale =
      str(options.locale) || (typeof navigator !== "undefined" ? navigator.language : "") || "en";

    this.store = new Store();
    this.visitor = this.store.visitor();
    this.conv = new Conversation(this.store, this.conversationKey());
    this.strings = new Strings();
    this.stringsGeneration = 0;

    this.socket = null;
    this.connected = false;
    this.ready = false;
    this.wantOpen = false;
    this.stateKnown = false; // a `state` event arrived: we know whether a flow runs
    this.prompt = null; // {data, el, box}: the current question, if any
    this.shown = new Set(); // seqs on screen
    this.highest = 0; // the highest of them
    this.gapTimer = null;
    this.gapDelay = GAP_WAIT_MS;
    this.welcomed = false; // this connection's history and state have come
    this.echoes = new Map(); // client_id -> element of a local copy of the customer's input
    this.pending = new Set(); // cancel functions of acknowledgements still awaited
    this.flushing = false;
    this.retryTimer = null;
    this.retryDelay = RETRY_MIN_MS;
    this.busyRetried = false; // the quick, quiet retry after a busy server was used
    this.reconnectTimer = null;
    this.reconnectDelay = RETRY_MIN_MS;
    this.pendingLanguage = null;
    this.typingSentAt = 0;
    this.typingIdleTimer = null;
    this.staffTypingTimer = null;

    this.view = new View({
      toggle: () => (this.view.isOpen() ? this.close() : this.open()),
      close: () => this.close(),
      language: () => this.switchLanguage(),
      privacy: () => this.openPrivacy(),
      start: () => this.command("start"),
      text: (text) => this.sendText(text),
      choice: (value, label) => this.choice(value, label),
      command: (value) => this.command(String(value).replace(/^cmd:/, "")),
      files: (files) => this.upload(files),
      typing: (active) => this.typing(active),
    });
  }

  // ------------------------------------------------------------------ lifecycle

  conversationKey() {
    const who = this.user ? `user:${this.user}` : `visitor:${this.visitor}`;
    return `conv:${this.server}:${who}`;
  }

  async start() {
    this.view.setStrings((k, p) => this.strings.t(k, p), toBcp47(this.locale()));
    this.restore();
    // Another tab of this browser deleted this visitor's data (only that replaces the id).
    this.store.onVisitorChange((before, after) => {
      if (!this.user && before === this.visitor) this.forget([], after);
    });
    this.connect();
    await Promise.race([this.loadStrings(this.locale()), sleep(4000)]);
    await bodyReady();
    this.view.mount();
    this.view.reveal();
    this.ready = true;
    if (this.wantOpen) this.open();
  }

  // An answer to the current question (or a command) is on its way: its buttons stay
  // hidden until it is acknowledged, so a double click cannot answer the next question.
  get busy() {
    return this.conv.outbox.some((e) => e.kind === "choice" || e.kind === "command");
  }

  locale() {
    return this.strings.locale || this.conv.locale || this.hostLocale;
  }

  // Only the latest request counts: an older answer arriving late must not win.
  async loadStrings(locale) {
    const generation = ++this.stringsGeneration;
    try {
      const { locale: got, strings } = await fetchStrings(this.server, toBcp47(locale));
      if (generation !== this.stringsGeneration) return false;
      this.applyStrings(got || locale, strings);
      return true;
    } catch {
      return false; // keys stand in; retried when the socket connects
    }
  }

  applyStrings(locale, table) {
    this.stringsGeneration += 1;
    if (!this.strings.apply(locale, table)) return;
    this.view.setStrings((k, p) => this.strings.t(k, p), toBcp47(this.strings.locale));
  }

  // What a reload shows before the server answers: the inputs not yet acknowledged.
  restore() {
    // An answer to a question or a command left unsent for long would now answer
    // whatever the flow asks today: drop those. Typed words and files are kept.
    const stale = Date.now() - STALE_ANSWER_MS;
    this.conv.outbox = this.conv.outbox.filter(
      (e) => (e.kind !== "choice" && e.kind !== "command") || (Number(e.at) || 0) > stale,
    );
    for (const entry of this.conv.outbox) this.echo(entry);
    this.view.setUnread(this.conv.unread);
  }

  open() {
    if (!this.ready) {
      this.wantOpen = true;
      return;
    }
    this.view.setOpen(true);
    if (this.conv.unread) {
      this.conv.unread = 0;
      this.conv.save();
    }
    this.view.setUnread(0);
  }

  close() {
    this.wantOpen = false;
    if (this.ready) this.view.setOpen(false);
  }

  // ------------------------------------------------------------------ connection

  auth() {
    const auth = { visitor: this.visitor };
    if (this.user) {
      auth.user = this.user;
      if (this.signature) auth.signature = this.signature;
      if (this.expires !== null) auth.expires = this.expires;
    }
    auth.locale = toBcp47(this.locale());
    auth.last_seq = this.conv.lastSeq;
    return auth;
  }

  connect() {
    // auth as a function: socket.io-client calls it on every (re)connect, so last_seq
    // is always the latest one shown.
    const socket = io(`${this.server}/widget`, {
      auth: (cb) => cb(this.auth()),
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 15000,
    });
    this.socket = socket;
    this.view.setStatus("connecting");

    socket.on("connect", () => this.onConnect());
    socket.on("disconnect", (reason) => this.onDisconnect(reason));
    socket.on("connect_error", (err) => this.onConnectError(err));
    socket.on("history", (data) => this.onHistory(data));
    socket.on("state", (data) => this.onState(data));
    socket.on("message", (m) => {
      if (isMessage(m)) this.showMessage(m, { unread: true });
    });
    socket.on("typing", (data) => this.onStaffTyping(data));
    // "Delete my data" was done on another device of this customer.
    socket.on("erased", () => this.forget([]));
  }

  onConnect() {
    this.connected = true;
    this.welcomed = false;
    this.reconnectDelay = RETRY_MIN_MS;
    clearTimeout(this.reconnectTimer);
    this.view.setStatus("online");
    this.view.showError(null);
    if (!this.strings.loaded) this.loadStrings(this.locale());
    this.flush();
    if (this.pendingLanguage) this.sendLanguage(this.pendingLanguage);
  }

  onDisconnect(reason) {
    this.connected = false;
    this.welcomed = false;
    this.view.setStatus("offline");
    this.view.setTyping(false);
    for (const cancel of Array.from(this.pending)) cancel();
    // The server closed the namespace: socket.io-client does not come back by itself.
    if (reason === "io server disconnect") this.reconnectLater();
  }

  onConnectError(err) {
    this.connected = false;
    this.view.setStatus("offline");
    const data = err && isObject(err.data) ? err.data : null;
    if (data && typeof data.code === "string") {
      this.view.showError(str(data.message) || this.strings.t("error"));
    }
    if (this.socket.active) return; // a transport failure: socket.io retries by itself
    // Refused by the server. bad_auth and bad_signature would be refused again the
    // same way; anything else (rate_limited) is worth another try later.
    if (!data || (data.code !== "bad_auth" && data.code !== "bad_signature")) this.reconnectLater();
  }

  reconnectLater() {
    clearTimeout(this.reconnectTimer);
    const delay = this.reconnectDelay * (0.75 + Math.random() / 2);
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, RETRY_MAX_MS);
    this.reconnectTimer = setTimeout(() => {
      if (this.socket && !this.socket.connected && !this.socket.active) this.socket.connect();
    }, delay);
  }

  // An emit that resolves with the acknowledgement, and rejects on timeout or when the
  // connection drops first (the outbox then resends after the reconnect).
  request(event, payload, timeoutMs = ACK_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      if (!this.socket || !this.connected) {
        reject(new Offline());
        return;
      }
      let settled = false;
      const settle = (fn, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pending.delete(cancel);
        fn(value);
      };
      const cancel = () => settle(reject, new Offline());
      const timer = setTimeout(() => settle(reject, new Timeout()), timeoutMs);
      this.pending.add(cancel);
      this.socket.emit(event, payload, (ack) => settle(resolve, ack));
    });
  }

  errorText(ack) {
    const message = isObject(ack) && isObject(ack.error) ? str(ack.error.message) : "";
    return message || this.strings.t("error");
  }

  // ------------------------------------------------------------------ server events

  // last_seq is the highest seq with nothing missing below it, not the highest seen:
  // pushes can arrive out of order (a reply sent while an earlier message is still on
  // its way), and a reconnect asking "after the highest" would skip the earlier one.
  advance() {
    while (this.shown.has(this.conv.lastSeq + 1)) this.conv.lastSeq += 1;
  }

  see(seq) {
    this.shown.add(seq);
    if (seq > this.highest) this.highest = seq;
    this.advance();
    this.watchGap();
  }

  // Everything up to `through` is on screen: a number below it that was not shown was
  // never stored (a resend drew it), and last_seq moves past it.
  seenThrough(through) {
    if (!Number.isInteger(through) || through <= this.conv.lastSeq) return;
    this.conv.lastSeq = through;
    this.advance();
  }

  // A number skipped: a push lost on its way (while a process makes its subscription to
  // Redis again, say), or a number never stored. After a moment for a push still on its
  // way, the server is asked what came after the last number without a gap. Not before
  // this connection's own replay is over (`state` follows it): that replay fills gaps,
  // and on a new page it is what says where the history starts.
  watchGap() {
    if (this.gapTimer || !this.welcomed || this.highest <= this.conv.lastSeq) return;
    this.gapTimer = setTimeout(() => this.fillGap(), this.gapDelay);
  }

  async fillGap() {
    this.gapTimer = null;
    const after = this.conv.lastSeq;
    // Offline: the reconnect replays everything after last_seq anyway.
    if (this.highest <= after || !this.connected || !this.welcomed) return;
    let ack;
    try {
      ack = await this.request("missed", { after });
    } catch {
      return; // the connection dropped or the answer was late: the reconnect replays it
    }
    if (!isObject(ack) || ack.ok !== true) return; // asked again at the next message
    const messages = Array.isArray(ack.messages) ? ack.messages : [];
    for (const m of messages) {
      // Unread as in a replay: only what this browser has not shown before.
      if (isMessage(m)) this.showMessage(m, { unread: m.seq > this.conv.readSeq, save: false });
    }
    this.seenThrough(ack.through);
    this.conv.save();
    // Moved on: a gap beyond this page is asked for next. Not: the missing number may
    // still be being stored (the server says so by stopping `through` short of it).
    this.gapDelay = this.conv.lastSeq > after ? GAP_WAIT_MS : Math.min(this.gapDelay * 2, GAP_WAIT_MAX_MS);
    this.watchGap();
  }

  onHistory(data) {
    const messages = isObject(data) && Array.isArray(data.messages) ? data.messages : [];
    // A replay may start after some seq (older messages are not sent on a new page).
    if (isObject(data) && Number.isInteger(data.after) && data.after > this.conv.lastSeq) {
      this.conv.lastSeq = data.after;
    }
    // Unread: what this browser has not shown before. A first visit (or a new device of
    // a signed-in user) just shows the history.
    const before = this.conv.readSeq;
    for (const m of messages) {
      if (isMessage(m)) this.showMessage(m, { unread: before > 0 && m.seq > before, save: false });
    }
    if (isObject(data)) this.seenThrough(data.through);
    this.conv.save();
  }

  onState(data) {
    if (!isObject(data)) return;
    this.stateKnown = true;
    if (!this.welcomed) {
      this.welcomed = true; // the replay is over
      this.watchGap();
    }
    if (typeof data.locale === "string" && data.locale) {
      if (this.conv.locale !== data.locale) {
        this.conv.locale = data.locale;
        this.conv.save();
      }
      if (data.locale !== this.strings.locale) this.loadStrings(data.locale);
    }
    const prompt = isPrompt(data.prompt) ? data.prompt : null;
    if (!prompt) {
      this.setPrompt(null);
    } else if (!(this.prompt && samePrompt(this.prompt.data, prompt))) {
      this.showReplies([prompt]);
    } else {
      this.refreshPrompt();
    }
  }

  onStaffTyping(data) {
    const on = isObject(data) && data.typing === true;
    clearTimeout(this.staffTypingTimer);
    this.view.setTyping(on);
    if (on) this.staffTypingTimer = setTimeout(() => this.view.setTyping(false), STAFF_TYPING_MAX_MS);
  }

  showMessage(m, { unread, save = true }) {
    if (this.shown.has(m.seq)) return;
    const message = {
      seq: m.seq,
      id: str(m.id),
      author: m.author,
      kind: str(m.kind),
      text: str(m.text),
      at: str(m.at),
      attachments: Array.isArray(m.attachments) ? m.attachments.filter(isObject) : [],
    };
    this.view.appendStored(this.view.item(message), m.seq);
    this.see(m.seq);
    if (m.author === "staff") {
      clearTimeout(this.staffTypingTimer);
      this.view.setTyping(false);
    }
    if (unread && m.author !== "customer" && !this.view.isOpen()) {
      this.conv.unread += 1;
      this.view.setUnread(this.conv.unread);
    }
    if (save) this.conv.save();
  }

  // ------------------------------------------------------------------ prompts

  // Replies are drawn in order; the last one with a step is the question now asked.
  // Replies without any step mean no flow runs any more (cancelled, finished, help
  // outside a flow): the start button comes back.
  showReplies(replies) {
    const list = Array.isArray(replies) ? replies.filter(isPrompt) : [];
    if (!list.length) {
      this.refreshPrompt();
      return;
    }
    let current = null;
    for (const reply of list) {
      const el = this.view.append(this.view.promptItem(reply));
      if (reply.step) current = { data: reply, el };
    }
    this.setPrompt(current);
  }

  setPrompt(current) {
    if (this.prompt && this.prompt.box) {
      this.view.keepFocus(this.prompt.box);
      this.prompt.box.remove();
    }
    this.prompt = current;
    if (current) current.box = null;
    this.refreshPrompt();
  }

  // Draws the current question's buttons (hidden while an answer is on its way), or
  // the start button when no flow runs.
  refreshPrompt() {
    const p = this.prompt;
    const wanted = !!p && !this.busy;
    if (p && p.box && !wanted) {
      this.view.keepFocus(p.box);
      p.box.remove();
      p.box = null;
    }
    if (wanted && !p.box) {
      const stick = this.view.nearEnd();
      p.box = this.view.promptControls(p.data);
      p.el.appendChild(p.box);
      if (stick) this.view.scrollToEnd();
    }
    this.view.showAttach(!!p && p.data.input === "attachments");
    this.view.showStart(!p && this.stateKnown && !this.busy);
  }

  // ------------------------------------------------------------------ inputs

  sendText(text) {
    const value = wellFormed(text);
    this.typing(false);
    // Typed while an answer is still on its way, the words are for the question that
    // answer brings, not the one on screen: name the step when it is sent.
    const answerAhead = this.conv.outbox.some((e) => e.kind === "choice" || e.kind === "command");
    this.enqueue("text", value, { text: value, attachments: [] }, this.currentStep(), answerAhead);
    return true;
  }

  // Every input names the question it answers, so a late or repeated one (a double
  // click, a resend after another device moved on) cannot answer the next question.
  currentStep() {
    return this.prompt && this.prompt.data ? this.prompt.data.step : null;
  }

  choice(value, label) {
    this.enqueue("choice", value, { text: label, attachments: [] }, this.currentStep());
  }

  command(name) {
    this.enqueue("command", name, null);
  }

  enqueue(kind, value, echo, step = null, stepWhenSent = false) {
    this.view.showError(null);
    const entry = { client_id: randomId(16), kind, value, echo, at: Date.now() };
    if (stepWhenSent) entry.stepWhenSent = true;
    else if (typeof step === "string" && step) entry.step = step;
    this.conv.outbox.push(entry);
    this.conv.save();
    this.echo(entry);
    if (kind === "choice" || kind === "command") this.refreshPrompt();
    this.flush();
  }

  // The customer's own input, shown at once, marked pending until acknowledged.
  echo(entry) {
    if (!entry.echo) return;
    const el = this.view.item({
      author: "customer",
      text: entry.echo.text,
      attachments: entry.echo.attachments,
    });
    el.setAttribute("data-client-id", entry.client_id);
    el.setAttribute("data-pending", "true");
    this.echoes.set(entry.client_id, el);
    this.view.append(el, { mine: true });
  }

  // Sends the outbox in order, one acknowledgement at a time. Inputs stay in the outbox
  // until acknowledged; the server ignores a client_id it has seen, so resending is safe.
  async flush() {
    if (this.flushing) return;
    this.flushing = true;
    clearTimeout(this.retryTimer);
    try {
      while (this.connected && this.conv.outbox.length) {
        const entry = this.conv.outbox[0];
        let ack;
        try {
          const input = { client_id: entry.client_id, kind: entry.kind, value: entry.value };
          if (entry.stepWhenSent) {
            // Sent once the answers before it are acknowledged: the question is known now.
            const step = this.currentStep();
            if (step) input.step = step;
          } else if (typeof entry.step === "string") input.step = entry.step;
          ack = await this.request("input", input);
        } catch (err) {
          if (err instanceof Timeout) this.retryLater();
          return; // Offline: the next connect flushes again
        }
        if (isObject(ack) && ack.ok === true) {
          this.dequeue(entry);
          this.retryDelay = RETRY_MIN_MS;
          this.busyRetried = false;
          this.acknowledged(entry, ack);
          continue;
        }
        const code = isObject(ack) && isObject(ack.error) ? ack.error.code : null;
        const hint = code === "unavailable" ? ack.error.retry_after_ms : null;
        if (typeof hint === "number" && !this.busyRetried) {
          // Nothing was done: the server had its bound of inputs at once for a moment.
          // Once, as soon as it says and without a message; if it is still busy, as any
          // other failure.
          this.busyRetried = true;
          this.retryLater(Math.min(Math.max(hint, 100), RETRY_MIN_MS));
          return;
        }
        this.view.showError(this.errorText(ack));
        if (code === "unavailable" || code === "rate_limited" || code === "error") {
          // Maybe nothing was stored, maybe it was: the same client_id, later, is safe.
          this.retryLater();
          return;
        }
        this.dequeue(entry); // refused for good: changes nothing, so drop it
        this.refused(entry);
      }
    } finally {
      this.flushing = false;
    }
  }

  // Flush again after `first` ms, or after the growing delay (2 s, doubling to 60 s).
  retryLater(first = null) {
    clearTimeout(this.retryTimer);
    const base = first ?? this.retryDelay;
    if (first === null) this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => this.flush(), base * (0.75 + Math.random() / 2));
  }

  dequeue(entry) {
    const i = this.conv.outbox.indexOf(entry);
    if (i >= 0) this.conv.outbox.splice(i, 1);
    this.conv.save();
  }

  acknowledged(entry, ack) {
    const replies = Array.isArray(ack.replies) ? ack.replies.filter(isPrompt) : [];
    if (replies.some((r) => r.erased === true)) {
      this.forget(replies);
      return;
    }
    const el = this.echoes.get(entry.client_id);
    this.echoes.delete(entry.client_id);
    if (el) {
      el.removeAttribute("data-pending");
      if (Number.isInteger(ack.seq) && ack.seq > 0) {
        el.setAttribute("data-seq", String(ack.seq));
        if (!this.shown.has(ack.seq)) {
          // Stored as a message of the conversation, and on screen already. last_seq is
          // left alone (a staff message with a lower seq may still be on its way).
          this.see(ack.seq);
        } else {
          el.remove(); // the stored copy is already on screen
        }
      }
    }
    this.showReplies(ack.replies);
    // The question now asked, after this input; null: the flow is over (sent, cancelled).
    if ("prompt" in ack && !isPrompt(ack.prompt)) this.setPrompt(null);
  }

  refused(entry) {
    const el = this.echoes.get(entry.client_id);
    this.echoes.delete(entry.client_id);
    if (el) {
      el.removeAttribute("data-pending");
      el.setAttribute("data-failed", "true");
    }
    this.refreshPrompt();
  }

  typing(active) {
    const now = Date.now();
    clearTimeout(this.typingIdleTimer);
    if (active) {
      if (now - this.typingSentAt > TYPING_REFRESH_MS) {
        this.typingSentAt = now;
        this.request("typing", { typing: true }).catch(() => {});
      }
      this.typingIdleTimer = setTimeout(() => this.typing(false), TYPING_IDLE_MS);
    } else if (this.typingSentAt) {
      this.typingSentAt = 0;
      this.request("typing", { typing: false }).catch(() => {});
    }
  }

  // ------------------------------------------------------------------ privacy

  // "My data": the privacy menu, a command like start (same outbox, same ack). A second
  // click while the first is on its way adds nothing.
  openPrivacy() {
    if (this.conv.outbox.some((e) => e.kind === "command" && e.value === "privacy")) return;
    this.command("privacy");
  }

  // The customer's data was deleted on the server (here: `replies` are its answer; on
  // another device or in another tab: none). Everything this browser keeps about the
  // conversation goes: its record (read position, unread count, unsent inputs, language),
  // what is on screen, and an anonymous visitor's id (a new random one is made, or
  // `visitor`, the one another tab already made). A signed-in user stays who the host app
  // says they are. Then a fresh connection: last_seq 0, as a new visitor would.
  forget(replies, visitor = null) {
    this.store.remove(this.conv.key);
    if (!this.user) this.visitor = visitor || this.store.renewVisitor(this.visitor);
    this.conv = new Conversation(this.store, this.conversationKey());

    clearTimeout(this.retryTimer);
    this.retryDelay = RETRY_MIN_MS;
    this.busyRetried = false;
    clearTimeout(this.staffTypingTimer);
    this.view.setTyping(false);
    this.view.showError(null);
    this.view.setUnread(0);
    this.shown = new Set();
    this.highest = 0;
    clearTimeout(this.gapTimer);
    this.gapTimer = null;
    this.gapDelay = GAP_WAIT_MS;
    this.welcomed = false;
    this.echoes.clear();
    this.prompt = null;
    this.stateKnown = false; // the start button comes back with the new connection's state
    this.view.keepFocus(this.view.messages); // a keyboard user stays in the panel
    this.view.clearMessages();
    const texts = replies.filter(isPrompt).map((r) => ({ text: r.text, step: null }));
    for (const reply of texts) this.view.append(this.view.promptItem(reply));
    this.view.note("erased");
    this.refreshPrompt();

    const socket = this.socket;
    if (socket) {
      socket.disconnect(); // also gives up on any acknowledgement still awaited
      this.view.setStatus("connecting");
      socket.connect(); // auth() is asked again: the new visitor id, last_seq 0
    }
  }

  // ------------------------------------------------------------------ language

  switchLanguage() {
    const target = String(this.locale()).toLowerCase().startsWith("zh") ? "en" : "zh_CN";
    if (this.connected) {
      this.sendLanguage(target);
      return;
    }
    // Offline: relabel now, tell the server when the connection is back.
    this.pendingLanguage = target;
    this.conv.locale = target;
    this.conv.save();
    this.loadStrings(target);
  }

  async sendLanguage(target) {
    this.view.showError(null);
    let ack;
    try {
      ack = await this.request("language", { locale: target });
    } catch {
      this.pendingLanguage = target;
      return;
    }
    this.pendingLanguage = null;
    if (!isObject(ack) || ack.ok !== true) {
      this.view.showError(this.errorText(ack));
      return;
    }
    this.conv.locale = target;
    this.conv.save();
    if (isObject(ack.strings)) this.applyStrings(target, ack.strings);
    else await this.loadStrings(target);
    this.showReplies(ack.replies);
  }

  // ------------------------------------------------------------------ uploads

  async upload(files) {
    for (const file of files) {
      if (!(await this.uploadOne(file))) break;
    }
  }

  async uploadOne(file) {
    this.view.showError(null);
    if (!this.connected) {
      this.view.showError(this.strings.t("offline"));
      return false;
    }
    this.view.setNotice("uploading");
    try {
      let grant;
      try {
        grant = await this.request("upload", {});
      } catch {
        this.view.showError(this.strings.t("upload_failed"));
        return false;
      }
      if (!isObject(grant) || grant.ok !== true || typeof grant.url !== "string" || typeof grant.token !== "string") {
        this.view.showError(this.errorText(grant));
        return false;
      }
      this.view.setAccept(grant.types);
      const tooBig = Number.isInteger(grant.max_bytes) && file.size > grant.max_bytes;
      const types = Array.isArray(grant.types) ? grant.types : [];
      const wrongType = types.length > 0 && file.type && !types.includes(file.type);
      if (tooBig || wrongType) {
        this.view.showError(this.strings.t("upload_failed"));
        return false;
      }
      const body = new FormData();
      body.append("file", file, file.name);
      let res;
      let result = null;
      try {
        res = await fetch(new URL(grant.url, `${this.server}/`).href, {
          method: "POST",
          headers: { Authorization: `Bearer ${grant.token}` },
          body,
          credentials: "omit",
        });
        result = await res.json().catch(() => null);
      } catch {
        this.view.showError(this.strings.t("upload_failed"));
        return false;
      }
      if (!res.ok || !isObject(result) || typeof result.upload_id !== "string") {
        const message = isObject(result) && isObject(result.error) ? str(result.error.message) : "";
        this.view.showError(message || this.strings.t("upload_failed"));
        return false;
      }
      const name = str(result.name) || file.name;
      const kind = str(result.mime_type || file.type).startsWith("image/") ? "photo" : "document";
      this.enqueue(
        "file",
        result.upload_id,
        { text: "", attachments: [{ name, kind }] },
        this.currentStep(),
      );
      return true;
    } finally {
      this.view.setNotice(null);
    }
  }
}

function bodyReady() {
  if (document.body) return Promise.resolve();
  return new Promise((resolve) => {
    document.addEventListener("DOMContentLoaded", () => resolve(), { once: true });
  });
}

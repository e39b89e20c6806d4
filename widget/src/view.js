// The widget's DOM, inside a shadow root. Server data is only ever written with
// textContent or setAttribute: a customer's "<script>" shows as those characters.
import { CSS } from "./styles.js";

const AUTHOR_LABEL = { customer: "you", staff: "team", bot: "assistant" };

const ICONS = {
  chat: "M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z",
  close: "M6 6l12 12M18 6L6 18",
  clip: "M21 11.5l-8.6 8.6a5 5 0 0 1-7.1-7.1l8.6-8.6a3.3 3.3 0 0 1 4.7 4.7l-8.6 8.6a1.7 1.7 0 0 1-2.4-2.4l8-8",
  photo: "M4 5h16v14H4zM4 16l5-5 4 4 3-3 4 4M15 9h.01",
  download: "M12 4v11M7 10l5 5 5-5M5 20h14",
};

// A file the server sent (a data export): {name, mime_type, data: base64} as a Blob.
// Null when it is not one.
const MIME = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$/;
function fileBlob(file) {
  if (!file || typeof file !== "object" || typeof file.data !== "string") return null;
  let bin;
  try {
    bin = atob(file.data);
  } catch {
    return null;
  }
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const type = typeof file.mime_type === "string" && MIME.test(file.mime_type) ? file.mime_type : "";
  return new Blob([bytes], { type: type || "application/octet-stream" });
}

function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  svg.appendChild(path);
  return svg;
}

// h("button", {class: "x", "data-testid": "send"}, child, "text", ...)
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

// A phone or tablet: the main pointer is a finger.
const touchFirst = () => typeof matchMedia === "function" && matchMedia("(pointer: coarse)").matches;

export class View {
  constructor(handlers) {
    this.handlers = handlers;
    this.t = (key) => key;
    this.timeLocale = undefined;
    this.unread = 0;
    this.objectUrls = new Set(); // blob: URLs of download links, revoked when the list is cleared

    this.host = h("div", { "data-feedback-widget": "" });
    // An inline !important style outranks the page's own rules on the host element.
    this.host.style.cssText = "all: initial !important; display: block !important;";
    this.shadow = this.host.attachShadow({ mode: "open" });
    this.shadow.appendChild(h("style", {}, CSS));
    this.build();
  }

  build() {
    this.badge = h("span", { class: "badge", "data-testid": "badge", "aria-hidden": "true", hidden: true });
    this.unreadText = h("span", { class: "sr-only" });
    this.launcher = h(
      "button",
      {
        type: "button",
        class: "launcher",
        "data-testid": "launcher",
        "aria-expanded": "false",
        "aria-controls": "fbw-panel",
      },
      icon("chat"),
      h("span", { "data-i18n": "launcher" }),
      this.unreadText,
      this.badge,
    );

    this.status = h("div", {
      class: "status",
      "data-testid": "status",
      "data-state": "connecting",
      "data-i18n": "connecting",
      role: "status",
    });
    this.privacy = h("button", {
      type: "button",
      class: "privacy",
      "data-testid": "privacy",
      "data-i18n": "privacy",
    });
    this.language = h("button", {
      type: "button",
      class: "language",
      "data-testid": "language",
      "data-i18n": "language",
    });
    this.closeButton = h(
      "button",
      { type: "button", class: "close", "data-testid": "close", "data-i18n-label": "close" },
      icon("close"),
    );
    this.messages = h("div", {
      class: "messages",
      "data-testid": "messages",
      role: "log",
      "aria-live": "polite",
      "aria-relevant": "additions",
      "aria-labelledby": "fbw-title",
      tabindex: "0",
    });
    this.typing = h("div", { class: "typing", "data-testid": "typing", "data-i18n": "typing", hidden: true });
    this.notice = h("div", { class: "notice", "data-testid": "notice", role: "status", hidden: true });
    this.error = h("p", { class: "error", "data-testid": "error", role: "alert", hidden: true });
    this.start = h("button", {
      type: "button",
      class: "start",
      "data-testid": "start",
      "data-i18n": "start",
      hidden: true,
    });
    this.attach = h(
      "button",
      { type: "button", class: "attach", "data-testid": "attach", "data-i18n-label": "attach", hidden: true },
      icon("clip"),
    );
    this.fileInput = h("input", {
      type: "file",
      class: "file-input",
      "data-testid": "file-input",
      multiple: true,
      tabindex: "-1",
      "aria-hidden": "true",
    });
    this.input = h("textarea", {
      class: "input",
      "data-testid": "input",
      rows: "1",
      "data-i18n-label": "placeholder",
      "data-i18n-placeholder": "placeholder",
    });
    this.send = h("button", { type: "button", class: "send", "data-testid": "send", "data-i18n": "send" });

    this.panel = h(
      "section",
      {
        id: "fbw-panel",
        class: "panel",
        "data-testid": "panel",
        role: "dialog",
        "aria-labelledby": "fbw-title",
        tabindex: "-1", // focusable by script (on a touch screen), not a tab stop
        hidden: true,
      },
      h(
        "header",
        { class: "header" },
        h(
          "div",
          { class: "heading" },
          h("h2", { id: "fbw-title", class: "title", "data-i18n": "title" }),
          this.status,
        ),
        h("div", { class: "tools" }, this.privacy, this.language),
        this.closeButton,
      ),
      this.messages,
      h(
        "div",
        { class: "footer" },
        this.typing,
        this.notice,
        this.error,
        this.start,
        h("div", { class: "composer" }, this.attach, this.fileInput, this.input, this.send),
      ),
    );
    this.root = h("div", { class: "root", "data-open": "false", hidden: true }, this.launcher, this.panel);
    this.shadow.appendChild(this.root);
    this.wire();
  }

  wire() {
    const on = this.handlers;
    this.launcher.addEventListener("click", () => on.toggle());
    this.closeButton.addEventListener("click", () => on.close());
    this.language.addEventListener("click", () => on.language());
    this.privacy.addEventListener("click", () => on.privacy());
    this.start.addEventListener("click", () => on.start());
    this.send.addEventListener("click", () => this.submit());
    this.attach.addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => {
      const files = Array.from(this.fileInput.files || []);
      this.fileInput.value = "";
      if (files.length) on.files(files);
    });
    this.input.addEventListener("keydown", (e) => {
      // Enter sends, Shift+Enter is a new line; never while an IME is composing (Chinese input).
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => {
      this.autosize();
      on.typing(this.input.value.length > 0);
    });
    this.root.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.isOpen()) {
        e.stopPropagation();
        on.close();
      }
    });
  }

  submit() {
    const text = this.input.value;
    if (!text.trim()) {
      this.input.focus();
      return;
    }
    if (this.handlers.text(text) !== false) {
      this.input.value = "";
      this.autosize();
    }
    this.input.focus();
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight + 2, 140)}px`;
  }

  mount() {
    document.body.appendChild(this.host);
  }

  reveal() {
    this.root.hidden = false;
  }

  // ---------------------------------------------------------------- labels

  setStrings(t, timeLocale) {
    this.t = t;
    this.timeLocale = timeLocale;
    for (const el of this.shadow.querySelectorAll("[data-i18n]")) {
      el.textContent = t(el.getAttribute("data-i18n"));
    }
    for (const el of this.shadow.querySelectorAll("[data-i18n-label]")) {
      const label = t(el.getAttribute("data-i18n-label"));
      el.setAttribute("aria-label", label);
      el.setAttribute("title", label);
    }
    for (const el of this.shadow.querySelectorAll("[data-i18n-placeholder]")) {
      el.setAttribute("placeholder", t(el.getAttribute("data-i18n-placeholder")));
    }
    for (const el of this.shadow.querySelectorAll("[data-download-name]")) {
      el.textContent = t("download", { name: el.getAttribute("data-download-name") });
    }
    for (const el of this.shadow.querySelectorAll("time[datetime]")) {
      el.textContent = this.formatTime(el.getAttribute("datetime"));
    }
    // The textarea's title would shadow its placeholder as a tooltip: keep only aria-label.
    this.input.removeAttribute("title");
    this.setUnread(this.unread);
  }

  label(el, key) {
    el.setAttribute("data-i18n", key);
    el.textContent = this.t(key);
    return el;
  }

  // ---------------------------------------------------------------- chrome

  isOpen() {
    return !this.panel.hidden;
  }

  setOpen(open) {
    this.panel.hidden = !open;
    this.root.setAttribute("data-open", String(open));
    this.launcher.setAttribute("aria-expanded", String(open));
    if (open) {
      this.scrollToEnd();
      if (touchFirst()) this.panel.focus();
      else this.input.focus();
    } else if (this.shadow.activeElement && this.shadow.activeElement !== this.launcher) {
      this.launcher.focus();
    }
  }

  setStatus(state) {
    this.status.setAttribute("data-state", state);
    this.label(this.status, state);
  }

  setUnread(count) {
    this.unread = count;
    this.badge.hidden = count <= 0;
    this.badge.textContent = count > 99 ? "99+" : String(count);
    this.unreadText.textContent = count > 0 ? ` ${this.t("unread", { count })}` : "";
  }

  setTyping(on) {
    this.typing.hidden = !on;
  }

  setNotice(key) {
    this.notice.hidden = !key;
    if (key) this.label(this.notice, key);
  }

  showError(text) {
    this.error.hidden = !text;
    this.error.textContent = text || "";
  }

  showStart(on) {
    const hadFocus = this.shadow.activeElement === this.start;
    this.start.hidden = !on;
    if (hadFocus && !on) this.input.focus();
  }

  showAttach(on) {
    this.attach.hidden = !on;
  }

  setAccept(types) {
    if (Array.isArray(types) && types.length) this.fileInput.setAttribute("accept", types.join(","));
  }

  // ---------------------------------------------------------------- messages

  formatTime(at) {
    const date = new Date(at);
    if (Number.isNaN(date.getTime())) return "";
    const today = new Date().toDateString() === date.toDateString();
    const options = today
      ? { hour: "2-digit", minute: "2-digit" }
      : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
    try {
      return new Intl.DateTimeFormat(this.timeLocale, options).format(date);
    } catch {
      return date.toLocaleString();
    }
  }

  // One item of the message list: a stored message, a prompt or a local echo.
  item({ author, text, seq, kind, at, attachments, step }) {
    const safeAuthor = Object.prototype.hasOwnProperty.call(AUTHOR_LABEL, author) ? author : "bot";
    const el = h("div", {
      class: "message",
      "data-testid": "message",
      "data-author": safeAuthor,
      "data-seq": Number.isInteger(seq) ? String(seq) : "",
      "data-kind": kind || null,
      "data-step": step || null,
    });
    el.appendChild(this.label(h("span", { class: "author" }), AUTHOR_LABEL[safeAuthor]));
    const bubble = h("div", { class: "bubble" });
    const body = h("div", { class: "text" });
    body.textContent = typeof text === "string" ? text : "";
    bubble.appendChild(body);
    if (Array.isArray(attachments) && attachments.length) {
      const list = h("ul", { class: "files" });
      for (const file of attachments) {
        const li = h("li", { "data-kind": file && file.kind === "photo" ? "photo" : "document" });
        li.appendChild(icon(file && file.kind === "photo" ? "photo" : "clip"));
        const name = h("span");
        name.textContent = file && typeof file.name === "string" ? file.name : "";
        li.appendChild(name);
        list.appendChild(li);
      }
      bubble.appendChild(list);
    }
    if (!body.textContent && bubble.childNodes.length > 1) body.hidden = true;
    el.appendChild(bubble);
    if (at) {
      const time = h("time", { datetime: at });
      time.textContent = this.formatTime(at);
      el.appendChild(time);
    }
    return el;
  }

  append(el, { mine = false } = {}) {
    const stick = mine || this.nearEnd();
    this.messages.appendChild(el);
    if (stick) this.scrollToEnd();
    return el;
  }

  // A stored message goes where its seq belongs: history and live events can interleave.
  appendStored(el, seq) {
    const stick = this.nearEnd();
    let before = null;
    const items = this.messages.querySelectorAll('[data-testid="message"]');
    for (let i = items.length - 1; i >= 0; i--) {
      const other = Number.parseInt(items[i].getAttribute("data-seq"), 10);
      if (Number.isInteger(other) && other > seq) before = items[i];
      else if (Number.isInteger(other)) break;
    }
    this.messages.insertBefore(el, before);
    if (stick) this.scrollToEnd();
    return el;
  }

  nearEnd() {
    const m = this.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  // Instantly: during a smooth scroll the list is not "near the end" yet, so a message
  // arriving meanwhile would not follow, and the newest message would stay out of view.
  scrollToEnd() {
    const m = this.messages;
    m.scrollTop = m.scrollHeight;
  }

  // Everything in the message list goes (after "delete my data").
  clearMessages() {
    this.messages.replaceChildren();
    for (const url of this.objectUrls) URL.revokeObjectURL(url);
    this.objectUrls.clear();
  }

  // A line of the widget's own in the message list (not a message of the conversation).
  note(key) {
    const el = h("p", { class: "note", "data-testid": `note-${key}` });
    return this.append(this.label(el, key));
  }

  // A prompt: its text as an assistant message; when it is the current question, its
  // options and controls as buttons right under it. A file that came with it (a data
  // export) is a download link in the bubble.
  promptItem(prompt) {
    const el = this.item({ author: "bot", text: prompt.text, step: prompt.step });
    const bubble = el.querySelector(".bubble");
    if (prompt.error && !String(prompt.text || "").includes(prompt.error)) {
      const err = h("p", { class: "prompt-error", "data-testid": "prompt-error" });
      err.textContent = prompt.error;
      bubble.prepend(err);
    }
    const link = this.downloadLink(prompt.file);
    if (link) bubble.appendChild(link);
    return el;
  }

  // The file's name is only ever text: the link's label and its download attribute.
  downloadLink(file) {
    const blob = fileBlob(file);
    if (!blob) return null;
    const name = typeof file.name === "string" ? file.name : "";
    const url = URL.createObjectURL(blob);
    this.objectUrls.add(url);
    const label = h("span", { "data-download-name": name });
    label.textContent = this.t("download", { name });
    return h(
      "a",
      { class: "download", "data-testid": "download", href: url, download: name },
      icon("download"),
      label,
    );
  }

  promptControls(prompt, { disabled = false } = {}) {
    const on = this.handlers;
    const box = h("div", { class: "prompt", "data-testid": "prompt", "data-step": prompt.step || null });
    const options = Array.isArray(prompt.options) ? prompt.options : [];
    const controls = Array.isArray(prompt.controls) ? prompt.controls : [];
    // Options answer the question; controls (back, cancel, help) steer the dialogue.
    const group = (items, kind, onClick) => {
      if (!items.length) return;
      const el = h("div", { class: `${kind}s`, role: "group" });
      for (const item of items) {
        const b = h("button", {
          type: "button",
          class: kind,
          "data-testid": kind,
          "data-value": item.value,
          disabled,
        });
        b.textContent = item.label;
        b.addEventListener("click", () => onClick(item.value, item.label));
        el.appendChild(b);
      }
      box.appendChild(el);
    };
    group(options, "option", on.choice);
    group(controls, "control", on.command);
    if (prompt.hint) {
      const hint = h("p", { class: "hint" });
      hint.textContent = prompt.hint;
      box.appendChild(hint);
    }
    return box;
  }

  focusInput() {
    this.input.focus();
  }

  // Focus left on a button that is about to disappear goes to the text box instead.
  // The buttons that had focus are going away: keep keyboard users in the panel. On a
  // touch screen, focusing the text box would pop the keyboard up over the next buttons.
  keepFocus(container) {
    const active = this.shadow.activeElement;
    if (!active || !container || !container.contains(active)) return;
    if (touchFirst()) this.panel.focus();
    else this.input.focus();
  }
}

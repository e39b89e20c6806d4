// Styles live inside the shadow root: the host page's CSS cannot reach the widget
// and the widget's CSS cannot reach the page. Inherited properties (font, colour, line
// height) still flow in through the host element, which page rules like `* {...}` can
// match and outrank :host rules on, so the reset sits on the root inside the shadow.
export const CSS = `
.root {
  all: initial;
  display: block;
  --fbw-accent: #1f4fd1;
  --fbw-accent-text: #ffffff;
  --fbw-bg: #ffffff;
  --fbw-fg: #1b1f24;
  --fbw-muted: #57606a;
  --fbw-line: #d0d7de;
  --fbw-bubble: #f1f3f6;
  --fbw-mine: #e3ebff;
  --fbw-danger: #b42318;
  --fbw-online: #1a7f37;
  --fbw-offline: #9a6700;
  --fbw-focus: #0b57d0;
  --fbw-z: 2147483000;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "PingFang SC", "Hiragino Sans GB",
    "Microsoft YaHei", "Noto Sans CJK SC", sans-serif;
  font-size: 15px;
  line-height: 1.45;
  color: var(--fbw-fg);
}
@media (prefers-color-scheme: dark) {
  .root {
    --fbw-accent: #7aa2ff;
    --fbw-accent-text: #0b1020;
    --fbw-bg: #15181d;
    --fbw-fg: #e6e9ee;
    --fbw-muted: #a2abb6;
    --fbw-line: #3a414b;
    --fbw-bubble: #222730;
    --fbw-mine: #26345a;
    --fbw-danger: #ff8f85;
    --fbw-online: #56d364;
    --fbw-offline: #e3b341;
    --fbw-focus: #9ab8ff;
  }
}
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
button, textarea, input { font: inherit; color: inherit; }
/* 16px at least: iOS Safari zooms the whole page into smaller text fields. */
textarea, input { font-size: max(16px, 1em); }
button {
  cursor: pointer;
  border: 1px solid var(--fbw-line);
  background: var(--fbw-bg);
  border-radius: 8px;
  padding: 6px 12px;
  min-height: 36px;
  transition: background-color 120ms ease, border-color 120ms ease;
}
button:hover { border-color: var(--fbw-accent); }
button:disabled { cursor: default; opacity: 0.55; }
:focus { outline: none; }
:focus-visible { outline: 3px solid var(--fbw-focus); outline-offset: 2px; }
.sr-only {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
svg { width: 20px; height: 20px; flex: none; fill: none; stroke: currentColor;
  stroke-width: 2; stroke-linecap: round; stroke-linejoin: round; }

.launcher {
  position: fixed; right: 20px; bottom: 20px; z-index: var(--fbw-z);
  display: inline-flex; align-items: center; gap: 8px;
  min-height: 48px; padding: 10px 18px; border-radius: 999px; border: none;
  background: var(--fbw-accent); color: var(--fbw-accent-text);
  font-weight: 600; box-shadow: 0 6px 20px rgba(0, 0, 0, 0.25);
}
.launcher:hover { filter: brightness(1.08); }
.badge {
  position: absolute; top: -6px; right: -6px; min-width: 22px; height: 22px;
  padding: 0 6px; border-radius: 11px; background: var(--fbw-danger); color: #fff;
  font-size: 12px; font-weight: 700; line-height: 22px; text-align: center;
  border: 2px solid var(--fbw-bg);
}

.panel {
  position: fixed; right: 20px; bottom: 84px; z-index: var(--fbw-z);
  width: 380px; max-width: calc(100vw - 40px);
  height: 600px; max-height: calc(100vh - 110px);
  display: flex; flex-direction: column;
  background: var(--fbw-bg); color: var(--fbw-fg);
  border: 1px solid var(--fbw-line); border-radius: 14px; overflow: hidden;
  box-shadow: 0 12px 40px rgba(0, 0, 0, 0.28);
  animation: fbw-in 160ms ease-out;
}
@keyframes fbw-in { from { opacity: 0; transform: translateY(12px); } to { opacity: 1; transform: none; } }
@media (max-width: 480px) {
  .panel {
    inset: 0; right: 0; bottom: 0; width: 100%; max-width: none;
    height: 100%; height: 100dvh; /* dvh: the on-screen keyboard does not hide the text box */
    max-height: none; border-radius: 0; border: none;
  }
  .root[data-open="true"] .launcher { display: none; }
}

.header {
  display: flex; align-items: flex-start; gap: 8px; padding: 12px 12px 10px 16px;
  background: var(--fbw-accent); color: var(--fbw-accent-text);
}
.header button {
  background: transparent; color: inherit; border-color: transparent; min-height: 36px;
}
.header button:hover { border-color: currentColor; }
.header :focus-visible { outline-color: var(--fbw-accent-text); }
.heading { flex: 1; min-width: 0; }
.title { margin: 0; font-size: 16px; font-weight: 700; line-height: 1.3; }
.status { display: flex; align-items: center; gap: 6px; font-size: 12px; margin-top: 2px; }
.status::before {
  content: ""; width: 8px; height: 8px; border-radius: 50%; flex: none;
  background: #c9d1d9; box-shadow: 0 0 0 2px rgba(255, 255, 255, 0.5);
}
.status[data-state="online"]::before { background: var(--fbw-online); }
.status[data-state="offline"]::before { background: var(--fbw-offline); }
.close { padding: 6px; }
/* My data and the language: a row of their own under the title, whatever their length. */
.header { flex-wrap: wrap; }
.tools { order: 3; flex-basis: 100%; display: flex; flex-wrap: wrap; gap: 4px; margin: 0 0 -4px -8px; }
.tools button { font-size: 13px; min-height: 32px; padding: 4px 8px; }

.messages {
  flex: 1; overflow-y: auto; padding: 12px 14px; display: flex; flex-direction: column;
  gap: 10px; overscroll-behavior: contain;
}
.message { max-width: 88%; align-self: flex-start; }
.message[data-author="customer"] { align-self: flex-end; }
.author { display: block; font-size: 12px; color: var(--fbw-muted); margin: 0 4px 2px; }
.message[data-author="customer"] .author { text-align: right; }
.bubble {
  padding: 8px 12px; border-radius: 12px; background: var(--fbw-bubble);
  white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word;
}
.message[data-author="customer"] .bubble { background: var(--fbw-mine); }
.message[data-author="staff"] .bubble { border: 1px solid var(--fbw-accent); }
.message[data-pending="true"] .bubble { opacity: 0.65; }
.message[data-failed="true"] .bubble { border: 1px dashed var(--fbw-danger); }
.files { list-style: none; margin: 6px 0 0; padding: 0; font-size: 13px; }
.files li { display: flex; align-items: center; gap: 4px; }
.files svg { width: 14px; height: 14px; }
time { display: block; font-size: 11px; color: var(--fbw-muted); margin: 2px 4px 0; }
.message[data-author="customer"] time { text-align: right; }
.download {
  display: inline-flex; align-items: center; gap: 6px; margin-top: 8px;
  color: var(--fbw-accent); font-weight: 600; text-decoration: underline;
  overflow-wrap: anywhere; border-radius: 4px;
}
.download svg { width: 16px; height: 16px; }
.note {
  align-self: center; margin: 4px 0; padding: 6px 12px; border-radius: 8px; max-width: 92%;
  font-size: 13px; text-align: center; color: var(--fbw-fg);
  background: var(--fbw-bubble); border: 1px solid var(--fbw-line);
}
.prompt-error { color: var(--fbw-danger); font-weight: 600; margin: 0 0 4px; }
.prompt { display: flex; flex-direction: column; gap: 6px; margin-top: 8px; }
.options, .controls { display: flex; flex-wrap: wrap; gap: 6px; }
.option { border-color: var(--fbw-accent); color: var(--fbw-accent); background: var(--fbw-bg); }
.option:hover { background: var(--fbw-mine); }
.control { font-size: 13px; min-height: 32px; padding: 4px 10px; color: var(--fbw-muted); }
.hint { font-size: 12px; color: var(--fbw-muted); margin: 0; }

.footer { border-top: 1px solid var(--fbw-line); padding: 8px 10px 10px; }
.typing, .notice { font-size: 12px; color: var(--fbw-muted); padding: 0 4px 6px; }
.typing::after { content: ""; display: inline-block; width: 1.2em; text-align: left;
  animation: fbw-dots 1.2s steps(4, end) infinite; }
@keyframes fbw-dots { 0% { content: ""; } 25% { content: "."; } 50% { content: ".."; } 75% { content: "..."; } }
.error {
  margin: 0 0 8px; padding: 6px 10px; border-radius: 8px; font-size: 13px;
  color: var(--fbw-danger); border: 1px solid var(--fbw-danger);
}
.start {
  width: 100%; margin-bottom: 8px; border: none; font-weight: 600;
  background: var(--fbw-accent); color: var(--fbw-accent-text); min-height: 42px;
}
.composer { display: flex; align-items: flex-end; gap: 6px; }
.composer textarea {
  flex: 1; resize: none; min-height: 40px; max-height: 140px; padding: 8px 10px;
  border: 1px solid var(--fbw-line); border-radius: 10px; background: var(--fbw-bg);
}
.composer textarea:focus-visible { outline-offset: 0; }
.attach { padding: 8px; min-height: 40px; }
.send {
  min-height: 40px; border: none; font-weight: 600;
  background: var(--fbw-accent); color: var(--fbw-accent-text);
}
.file-input { display: none; }

@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after {
    animation: none !important; transition: none !important; scroll-behavior: auto !important;
  }
}
`;

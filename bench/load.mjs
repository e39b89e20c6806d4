// Widget load client: many socket.io-client connections from one Node process.
//
//   node bench/load.mjs http://127.0.0.1:8080
//
// It reads one JSON command per line on stdin and answers each with one JSON line on
// stdout (the Python benchmark scripts drive it; see bench/common.py NodeLoad):
//   {"cmd":"connect","n":1000,"waitState":true,"concurrency":200}   open n more connections
//   {"cmd":"feedback","concurrency":50}   give feedback on every connection (the whole flow)
//   {"cmd":"rate","rate":300,"seconds":10}   open loop: M inputs/s in total, round robin
//   {"cmd":"saturate","seconds":10,"perConnection":1,"connections":64}   closed loop: send
//       again on each ack (on the first `connections` connections, default all)
//   {"cmd":"clearMessages"} / {"cmd":"messages"}   `message` events received, with times
//   {"cmd":"close"}
// Latencies are from sending an `input` to its acknowledgement, in milliseconds; an input
// answered `busy` is sent again as the widget does, and counted from its first send.
// Only the locked widget/node_modules are used (socket.io-client 4.8).
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import readline from "node:readline";

const require = createRequire(new URL("../widget/package.json", import.meta.url));
const { io } = require("socket.io-client");

const url = process.argv[2];
const sockets = []; // {socket, visitor, state}
let messages = []; // {i, text, kind, at}
let sequence = 0;

const now = () => performance.timeOrigin + performance.now(); // ms since the epoch, sub-ms
const clientId = () => "b" + (sequence++).toString(36).padStart(8, "0") + randomBytes(4).toString("hex");
const pct = (sorted, p) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))] : null;

function summary(latencies, started, ended, extra) {
  const sorted = Float64Array.from(latencies).sort();
  const seconds = (ended - started) / 1000;
  return {
    acked: sorted.length, seconds, per_second: sorted.length / seconds,
    p50: pct(sorted, 50), p95: pct(sorted, 95), p99: pct(sorted, 99), max: pct(sorted, 100),
    ...extra,
  };
}

function open(i, waitState) {
  return new Promise((resolve) => {
    const visitor = randomBytes(16).toString("base64url");
    const socket = io(url + "/widget", {
      auth: { visitor, locale: "en", last_seq: 0 },
      transports: ["websocket"],
      reconnection: false,
      timeout: 60000,
    });
    const entry = { socket, visitor, prompt: null };
    let done = false;
    const finish = (ok) => { if (!done) { done = true; resolve(ok ? entry : null); } };
    socket.on("state", (s) => { entry.prompt = s.prompt; if (waitState) finish(true); });
    socket.on("connect", () => { if (!waitState) finish(true); });
    socket.on("connect_error", () => finish(false));
    socket.on("message", (m) => messages.push({ i, text: m.text, kind: m.kind, at: now() }));
  });
}

async function pool(items, concurrency, work) {
  let next = 0;
  const results = [];
  async function runner() {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index], index);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, runner));
  return results;
}

// As the widget (widget/src/widget.js): after a busy answer (`unavailable` with
// `retry_after_ms`), once after the hint, then 2 s doubling, each jittered by +-25 %.
const RETRY_MIN_MS = 2000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One input as the widget sends it: answered `busy` (the server is at its bound of inputs
// in flight), it is sent again with the same client_id after the widget's delay. The
// latency of such an input counts from its first send; `tries` says how many it took.
async function send(entry, kind, value) {
  const input = { client_id: clientId(), kind, value };
  let delay = RETRY_MIN_MS;
  for (let tries = 1; ; tries++) {
    const ack = await entry.socket.timeout(60000).emitWithAck("input", input);
    const busy = typeof ack.error?.retry_after_ms === "number"; // the service at its bound
    if (ack.ok || !busy || tries >= 6) return { ...ack, tries };
    const wait = tries === 1 ? ack.error.retry_after_ms : delay;
    await sleep(wait * (0.75 + Math.random() / 2));
    if (tries > 1) delay *= 2;
  }
}

async function feedback(entry) {
  const steps = [["command", "start"], ["choice", "yes"], ["choice", "yes"], ["choice", "yes"],
    ["choice", "user_interface"], ["choice", "3"], ["text", "The checkout page froze twice."],
    ["choice", "done"], ["choice", "skip"], ["choice", "submit"]];
  for (const [kind, value] of steps) {
    const ack = await send(entry, kind, value);
    if (!ack.ok) throw new Error(`feedback step ${value}: ${JSON.stringify(ack.error)}`);
  }
}

const TEXT = "One more thing: the page froze again today.";

const commands = {
  async connect({ n, waitState = true, concurrency = 200 }) {
    const started = now();
    const base = sockets.length;
    const opened = await pool(Array.from({ length: n }, (_, k) => base + k), concurrency, (i) => open(i, waitState));
    const ok = opened.filter(Boolean);
    sockets.push(...ok);
    return { connected: ok.length, failed: n - ok.length, total: sockets.length, seconds: (now() - started) / 1000 };
  },
  async feedback({ concurrency = 50 }) {
    const started = now();
    let failed = 0, firstError = null;
    await pool(sockets, concurrency, async (entry) => {
      try { await feedback(entry); } catch (err) { failed++; firstError ??= String(err); }
    });
    return { done: sockets.length - failed, failed, firstError, seconds: (now() - started) / 1000 };
  },
  async rate({ rate, seconds, kind = "text", value = TEXT }) {
    // Open loop: the send times are fixed by the rate, not by the acks (no coordinated omission).
    const latencies = [];
    let sent = 0, errors = 0, timeouts = 0, unstored = 0, retried = 0, firstError = null;
    const pending = [];
    const started = now();
    const total = Math.round(rate * seconds);
    await new Promise((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((now() - started) / 1000) * rate));
        while (sent < due) {
          const entry = sockets[sent % sockets.length];
          const t0 = now();
          sent++;
          pending.push(send(entry, kind, value).then(
            (ack) => {
              if (ack.tries > 1) retried++;
              if (ack.ok) { latencies.push(now() - t0); if (ack.seq == null) unstored++; } else { errors++; firstError ??= ack.error; }
            },
            () => { timeouts++; }));
        }
        if (sent >= total) resolve(); else setTimeout(tick, 2);
      };
      tick();
    });
    const sendEnded = now();
    await Promise.all(pending);
    return summary(latencies, started, Math.max(sendEnded, now()), {
      target_rate: rate, sent, errors, timeouts, unstored, retried, firstError, drain_seconds: (now() - sendEnded) / 1000 });
  },
  async saturate({ seconds, perConnection = 1, connections = sockets.length, kind = "text", value = TEXT }) {
    // Closed loop: every connection keeps `perConnection` inputs in flight.
    const latencies = [];
    let errors = 0, unstored = 0, retried = 0, firstError = null;
    const started = now();
    const deadline = started + seconds * 1000;
    const loop = async (entry) => {
      while (now() < deadline) {
        const t0 = now();
        try {
          const ack = await send(entry, kind, value);
          if (ack.tries > 1) retried++;
          if (ack.ok) { latencies.push(now() - t0); if (ack.seq == null) unstored++; } else { errors++; firstError ??= ack.error; }
        } catch { errors++; }
      }
    };
    const looping = sockets.slice(0, connections);
    await Promise.all(looping.flatMap((e) => Array.from({ length: perConnection }, () => loop(e))));
    return summary(latencies, started, now(), { errors, unstored, retried, firstError, in_flight: looping.length * perConnection });
  },
  async clearMessages() { messages = []; return { ok: true }; },
  async messages() { return { messages }; },
  async visitors() { return { visitors: sockets.map((e) => e.visitor) }; },
  async close() {
    for (const e of sockets) e.socket.disconnect();
    sockets.length = 0;
    return { ok: true };
  },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  let answer;
  try { answer = await commands[cmd.cmd](cmd); } catch (err) { answer = { error: String(err?.stack ?? err) }; }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
for (const e of sockets) e.socket.disconnect();
process.exit(0);

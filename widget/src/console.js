// The staff console's only script (the CSP allows no inline script), bundled by esbuild
// with socket.io-client into widget/dist/console.js and served at /console/live.js.
// - Live updates: namespace /staff (the session cookie signs the staff member in). The
//   server pushes only which ticket changed; the page then fetches the part it shows
//   over HTTP (access checked, views audited) and swaps it in.
// - Canned replies: choosing one fills the reply box (without JS, the "Use" button
//   reloads the page with the reply filled in).
import { io } from "socket.io-client";

const body = document.body;
const live = body.getAttribute("data-live");
const ticketId = body.getAttribute("data-ticket-id");

function debounce(fn, ms) {
  let timer = null;
  return () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}

async function swap(url, targetId) {
  try {
    const response = await fetch(url, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-Requested-With": "console-refresh" },
      redirect: "error", // never swap in another page (the sign-in page after a sign-out)
    });
    if (response.status === 401) {
      setState("offline"); // signed out (elsewhere, or the session ended): reload to sign in
      return;
    }
    if (!response.ok) return; // the next event or a reload will catch up
    const html = await response.text();
    const target = document.getElementById(targetId);
    if (!target) return;
    // Server-rendered with autoescaping: customer text arrives as text, not markup.
    target.innerHTML = html;
    target.setAttribute("data-refreshed", String(Date.now()));
  } catch {
    // offline for a moment: the reconnect catches up
  }
}

function queueUrl() {
  const params = new URLSearchParams(window.location.search);
  params.set("partial", "1");
  return `/console/queue?${params.toString()}`;
}

const refreshQueue = debounce(() => swap(queueUrl(), "results"), 250);
const refreshTimeline = debounce(
  () => swap(`/console/tickets/${encodeURIComponent(ticketId)}/timeline`, "timeline"),
  250,
);

function onTicketEvent(data) {
  if (live === "queue") refreshQueue();
  if (live === "ticket" && (data === null || (data && data.ticket_id === ticketId))) {
    refreshTimeline();
  }
}

function setState(state) {
  body.setAttribute("data-live-state", state);
  const notice = document.getElementById("live-offline");
  if (notice) notice.hidden = state === "online" || state === "connecting";
}

if (live === "queue" || live === "ticket") {
  setState("connecting");
  const socket = io("/staff", { transports: ["websocket", "polling"] });
  let connectedBefore = false;
  socket.on("connect", () => {
    setState("online");
    if (connectedBefore) onTicketEvent(null); // catch up on what was missed
    connectedBefore = true;
  });
  socket.on("disconnect", () => setState("offline"));
  socket.on("connect_error", () => setState("offline")); // refused: signed out
  socket.on("ticket", (data) => onTicketEvent(data));
}

const picker = document.getElementById("canned-select");
const box = document.getElementById("reply-text");
if (picker && box) {
  picker.addEventListener("change", () => {
    const option = picker.options[picker.selectedIndex];
    const text = option ? option.getAttribute("data-text") : null;
    if (text) {
      box.value = text;
      box.focus();
    }
  });
}

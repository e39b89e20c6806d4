// The staff console's only script (the CSP allows no inline script).
// - Live updates: a minimal Socket.IO v4 client over one WebSocket, namespace /staff.
//   The server pushes only which ticket changed; the page then fetches the part it shows
//   over HTTP (access checked, views audited) and swaps it in.
// - Canned replies: choosing one fills the reply box (without JS, the "Use" button
//   reloads the page with the reply filled in).
(function () {
  "use strict";
  var body = document.body;
  var live = body.getAttribute("data-live");
  var ticketId = body.getAttribute("data-ticket-id");
  var NS = "/staff";

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      if (timer) clearTimeout(timer);
      timer = setTimeout(function () { timer = null; fn(); }, ms);
    };
  }

  function swap(url, targetId) {
    return fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var target = document.getElementById(targetId);
        if (!target) return;
        // Server-rendered with autoescaping: customer text arrives as text, not markup.
        target.innerHTML = html;
        target.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next event or a reload will catch up */ });
  }

  function queueUrl() {
    var params = new URLSearchParams(window.location.search);
    params.set("partial", "1");
    return "/console/queue?" + params.toString();
  }

  var refreshQueue = debounce(function () { swap(queueUrl(), "results"); }, 250);
  var refreshTimeline = debounce(function () {
    swap("/console/tickets/" + encodeURIComponent(ticketId) + "/timeline", "timeline");
  }, 250);

  function onTicketEvent(data) {
    if (live === "queue") refreshQueue();
    if (live === "ticket" && (data === null || data.ticket_id === ticketId)) refreshTimeline();
  }

  function setState(state) {
    body.setAttribute("data-live-state", state);
    var notice = document.getElementById("live-offline");
    if (notice) notice.hidden = state === "online" || state === "connecting";
  }

  var attempts = 0;
  var refused = false;
  function connect() {
    setState("connecting");
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var ws = new WebSocket(scheme + "//" + window.location.host + "/socket.io/?EIO=4&transport=websocket");
    var wasConnected = attempts > 0;
    ws.onmessage = function (event) {
      var packet = String(event.data);
      if (packet === "2") { ws.send("3"); return; }           // Engine.IO ping -> pong
      if (packet.charAt(0) === "0") { ws.send("40" + NS + ","); return; } // open -> join /staff
      if (packet.indexOf("40" + NS + ",") === 0) {
        setState("online");
        if (wasConnected) onTicketEvent(null);                 // catch up on what was missed
        attempts = 0;
        return;
      }
      if (packet.indexOf("44" + NS + ",") === 0) { refused = true; setState("offline"); ws.close(); return; }
      if (packet.indexOf("42" + NS + ",") === 0) {
        var args = JSON.parse(packet.slice(NS.length + 3));
        if (args[0] === "ticket") onTicketEvent(args[1]);
      }
    };
    ws.onclose = function () {
      setState("offline");
      if (refused) return;
      attempts += 1;
      setTimeout(connect, Math.min(30000, 1000 * Math.pow(2, Math.min(attempts, 5))));
    };
  }
  if (live === "queue" || live === "ticket") connect();

  var picker = document.getElementById("canned-select");
  var box = document.getElementById("reply-text");
  if (picker && box) {
    picker.addEventListener("change", function () {
      var option = picker.options[picker.selectedIndex];
      var text = option ? option.getAttribute("data-text") : null;
      if (text) { box.value = text; box.focus(); }
    });
  }
})();

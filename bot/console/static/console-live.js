// The live feed: every event on /api/ws means "something changed"; each part of the page
// then fetches itself again (they listen for `console-changed`). While the feed is down the
// parts are refreshed every few seconds instead, and the feed is reopened with a backoff.
const PING_EVERY_MS = 25000;
const POLL_EVERY_MS = 15000;
const SESSION_ENDED = 4401; // the server's close code when the login ended

export function refresh() {
  window.htmx.trigger(document.body, "console-changed");
}

export function connectLive(indicator, onEvent) {
  let tries = 0;
  let pinger = null;
  let poller = null;

  function open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/ws`);
    indicator.dataset.state = tries ? "offline" : "connecting";
    ws.addEventListener("open", () => {
      const again = tries > 0;
      tries = 0;
      indicator.dataset.state = "live";
      clearInterval(poller);
      poller = null;
      pinger = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
      }, PING_EVERY_MS);
      if (again) refresh(); // catch up on what happened while away
    });
    ws.addEventListener("message", (msg) => {
      let event = null;
      try {
        event = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (event && event.type !== "pong") onEvent(event);
    });
    ws.addEventListener("close", (closed) => {
      clearInterval(pinger);
      if (closed.code === SESSION_ENDED) {
        location.reload(); // the page then asks to sign in
        return;
      }
      indicator.dataset.state = "offline";
      if (!poller) poller = setInterval(refresh, POLL_EVERY_MS);
      tries += 1;
      const base = Math.min(30000, 1000 * 2 ** (tries - 1));
      setTimeout(open, base / 2 + Math.random() * (base / 2));
    });
  }

  open();
  // back to the tab after a while: what it shows may be old
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
}

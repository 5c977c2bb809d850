// The agent console's own script: the server renders every part of the page (with htmx);
// this only wires what lives in the browser: the live feed, counting clocks, arrivals
// (sound, desktop notification) and the reply box's keys. No words and no queue data here:
// both come in the page.
import { connectLive, refresh } from "./console-live.js";
import { startTicks } from "./console-ticks.js";
import { watchArrivals } from "./console-arrivals.js";
import { wireReplyBox } from "./console-reply.js";
import { wireDismiss } from "./console-dismiss.js";

const live = document.querySelector("[data-live]");
if (live) {
  connectLive(live, (event) => {
    if (event.type === "lease_lapsed") {
      // addressed to this agent: why a conversation left their hands, in the server's words
      tell(event, live.dataset.lang);
      refresh();
      return;
    }
    if (event.type === "alert") {
      // an alert names a notice the page already holds, in the agent's words
      const notice = document.getElementById(`alert-${event.alert}`);
      if (notice) notice.hidden = false;
      return;
    }
    refresh();
  });
  watchArrivals();
  wireReplyBox();
  wireDismiss();
}
startTicks(refresh);

function tell(event, lang) {
  const toast = document.getElementById("toast");
  if (!toast || !event.zh) return;
  const words = { zh: event.zh, en: event.en }[lang] || `${event.zh} ${event.en}`;
  toast.textContent = words;
  toast.className = "toast info";
  toast.setAttribute("role", "alert");
  toast.hidden = false;
}

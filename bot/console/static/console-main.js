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

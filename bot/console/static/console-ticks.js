// Spans of time that keep counting between refreshes: waits count up, the claim lease
// counts down. The server renders the seconds and the unit words (data-seconds, data-units);
// this counts on from the moment each element appeared, so the two clocks need not agree.
const started = new WeakMap();

/** As bot/durations.py says it: two units at most, the larger first, a zero second dropped. */
export function sayDuration(seconds, units) {
  const sizes = [86400, 3600, 60, 1];
  let left = Math.max(0, Math.floor(seconds));
  const parts = [];
  for (let i = 0; i < sizes.length && parts.length < 2; i++) {
    const count = Math.floor(left / sizes[i]);
    left %= sizes[i];
    if (count || parts.length) parts.push([count, units[i]]);
  }
  if (parts.length === 2 && parts[1][0] === 0) parts.pop();
  if (!parts.length) return `0 ${units[3]}`;
  return parts.map(([count, unit]) => `${count} ${unit}`).join(" ");
}

export function startTicks(onLapse) {
  const tick = () => {
    const now = performance.now();
    for (const el of document.querySelectorAll("[data-tick]")) {
      if (!started.has(el)) started.set(el, now);
      const elapsed = (now - started.get(el)) / 1000;
      const base = Number(el.dataset.seconds);
      const down = el.dataset.tick === "down";
      const value = down ? base - elapsed : base + elapsed;
      el.textContent = sayDuration(value, el.dataset.units.split(" "));
      if (down && value <= 0 && !el.dataset.lapsed) {
        el.dataset.lapsed = "true";
        onLapse(); // the server says what became of the conversation
      }
    }
  };
  tick();
  setInterval(tick, 1000);
}

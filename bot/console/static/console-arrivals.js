// New handoffs in the queue: read out to screen readers, an optional sound (off unless the
// agent turns it on; remembered in this browser), and a desktop notification once the agent
// allowed them from the button (never asked on page load). The words come from the page.
const SOUND_KEY = "billbot.console.sound";
let newest = null; // the highest handoff id seen in the queue; nothing is new on first look

function soundOn() {
  return localStorage.getItem(SOUND_KEY) === "on";
}

function permission() {
  return "Notification" in window ? Notification.permission : "unsupported";
}

function beep() {
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    const volume = audio.createGain();
    tone.frequency.value = 880;
    volume.gain.value = 0.1;
    tone.connect(volume).connect(audio.destination);
    tone.onended = () => audio.close();
    tone.start();
    tone.stop(audio.currentTime + 0.25);
  } catch {
    // no sound on this machine: the notification and the title still tell
  }
}

function lookAtQueue() {
  const items = [...document.querySelectorAll("#queue-list [data-id]")];
  const ids = items.map((li) => Number(li.dataset.id));
  const top = Math.max(0, ...ids);
  if (newest === null) {
    newest = top;
    return;
  }
  const fresh = items.filter((li) => Number(li.dataset.id) > newest);
  newest = Math.max(newest, top);
  if (!fresh.length) return;
  const words = fresh.map((li) => li.dataset.announce);
  document.getElementById("queue-announce").textContent = words.join(" ");
  if (soundOn()) beep();
  const notify = document.querySelector("[data-notify]");
  if (permission() === "granted" && notify) {
    new Notification(notify.dataset.notifyTitle, { body: words.join("\n"), tag: "billbot-queue" });
  }
}

export function watchArrivals() {
  const sound = document.querySelector("[data-sound]");
  const showSound = () => sound.setAttribute("aria-pressed", String(soundOn()));
  sound.addEventListener("click", () => {
    localStorage.setItem(SOUND_KEY, soundOn() ? "off" : "on");
    showSound();
    if (soundOn()) beep(); // so the agent hears what it will sound like
  });
  showSound();

  const notify = document.querySelector("[data-notify]");
  const showPermission = () => (notify.dataset.permission = permission());
  notify.querySelector("button").addEventListener("click", async () => {
    await Notification.requestPermission();
    showPermission();
  });
  showPermission();

  lookAtQueue();
  document.body.addEventListener("htmx:afterSettle", lookAtQueue);
}

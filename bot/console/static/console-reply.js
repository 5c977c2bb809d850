// The reply box: Ctrl+Enter sends, a canned reply is added to what is typed, a refused
// reply's words stay under the box it was typed in (a live refresh does not wipe them), and
// the transcript stays at its end while the agent reads there (a refresh replaces it).
let atEnd = true;
let refused = null; // the refusal shown under the reply box, and that box's id
let shown = null; // which conversation's transcript is on the page

function transcript() {
  return document.querySelector("[data-transcript]");
}

export function wireReplyBox() {
  document.addEventListener("keydown", (event) => {
    const box = event.target.closest && event.target.closest("textarea[data-reply]");
    if (box && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });
  document.addEventListener("change", (event) => {
    const select = event.target.closest && event.target.closest("select[data-canned]");
    if (!select) return;
    const chosen = select.selectedOptions[0];
    const box = select.form.querySelector("textarea[data-reply]");
    if (chosen && chosen.dataset.text && box) {
      box.value = box.value.trim() ? `${box.value.trimEnd()}\n${chosen.dataset.text}` : chosen.dataset.text;
      box.focus();
    }
    select.value = "";
  });
  document.body.addEventListener("htmx:beforeSwap", () => {
    const list = transcript();
    atEnd = !list || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  });
  const follow = () => {
    const list = transcript();
    const opened = list && list.dataset.transcript !== shown;
    if (list && (atEnd || opened)) list.scrollTop = list.scrollHeight;
    shown = list ? list.dataset.transcript : null;
    if (opened) {
      // a conversation just opened: below the lists on a narrow screen, so bring it up
      if (window.matchMedia("(max-width: 899px)").matches) list.closest("section").scrollIntoView();
      const box = document.querySelector("textarea[data-reply]");
      if (box && !box.disabled) box.focus();
    }
  };
  document.body.addEventListener("htmx:afterSettle", follow);
  follow();
  document.body.addEventListener("htmx:afterSwap", () => {
    const box = document.querySelector("textarea[data-reply]");
    const words = document.querySelector("[data-reply-error]");
    if (words) {
      refused = { box: box && box.id, words: words.cloneNode(true) };
    } else if (refused && box && box.id === refused.box) {
      box.after(refused.words.cloneNode(true)); // the same draft: its refusal still stands
    } else {
      refused = null; // sent, or another conversation
    }
  });
}

// The reply box: Ctrl+Enter sends, a canned reply is added to what is typed, and the
// transcript stays at its end while the agent reads there (a refresh replaces it).
let atEnd = true;
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
    if (list && (atEnd || list.dataset.transcript !== shown)) list.scrollTop = list.scrollHeight;
    shown = list ? list.dataset.transcript : null;
  };
  document.body.addEventListener("htmx:afterSettle", follow);
  follow();
}

// A button with data-dismiss="ID" empties the element ID (a one-time password, once the admin
// has passed it on): nothing of it stays in the page.
export function wireDismiss() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-dismiss]");
    if (!button) return;
    const box = document.getElementById(button.dataset.dismiss);
    if (box) box.replaceChildren();
  });
}

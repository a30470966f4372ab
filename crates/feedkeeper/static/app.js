// feedkeeper dashboard: the little that needs a script. Copy buttons: a button with
// data-copy="<id>" copies that field's text and says so; without the Clipboard API (or its
// permission) it selects the text and uses the older copy command.
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const status = button.parentElement.querySelector(".copied");
  if (!field) return;
  const say = (text) => { if (status) status.textContent = text; };
  const fallback = () => {
    field.focus();
    field.select();
    let copied = false;
    try { copied = document.execCommand("copy"); } catch (_) { copied = false; }
    say(copied ? "Copied." : "Selected: press Ctrl+C (or ⌘C) to copy.");
  };
  const text = field.value !== undefined ? field.value : field.textContent;
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(() => say("Copied."), fallback);
  } else {
    fallback();
  }
});

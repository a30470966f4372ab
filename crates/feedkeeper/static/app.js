// feedkeeper dashboard: the little that needs a script.
// - Copy buttons: a button with data-copy="<id>" copies that field's text and says so; without
//   the Clipboard API (or its permission) it selects the text and uses the older copy command.
// - Widget preview: while the widget form changes, its preview frame reloads with the form's
//   values (nothing is saved until the form is sent).
// - Times: the server writes every time as "2026-12-03 11:37 UTC" (right without a script);
//   here each becomes a <time> in the viewer's own time zone, the UTC text kept as its title.
"use strict";

const UTC_TIME = /(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}) UTC/g;
const SKIP = new Set(["SCRIPT", "STYLE", "TEXTAREA", "TIME", "INPUT", "OPTION"]);

function localTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const found = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement && !SKIP.has(node.parentElement.tagName) && node.nodeValue.includes(" UTC")) {
      found.push(node);
    }
  }
  for (const node of found) {
    const text = node.nodeValue;
    const parts = document.createDocumentFragment();
    let last = 0;
    for (const m of text.matchAll(UTC_TIME)) {
      const when = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]));
      if (Number.isNaN(when.getTime())) continue;
      parts.append(text.slice(last, m.index));
      const time = document.createElement("time");
      time.dateTime = when.toISOString();
      time.title = m[0];
      time.textContent = format.format(when);
      parts.append(time);
      last = m.index + m[0].length;
    }
    if (last === 0) continue;
    parts.append(text.slice(last));
    node.replaceWith(parts);
  }
}

localTimes(document.body);
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

const widgetForm = document.getElementById("widget-form");
const preview = document.getElementById("widget-preview");
if (widgetForm && preview) {
  let timer = 0;
  const refresh = () => {
    const query = new URLSearchParams(new FormData(widgetForm));
    query.delete("csrf");
    preview.src = widgetForm.dataset.preview + "?" + query.toString();
  };
  const soon = () => { clearTimeout(timer); timer = setTimeout(refresh, 300); };
  widgetForm.addEventListener("input", soon);
  widgetForm.addEventListener("change", soon);
}

// The preview at a phone's or a computer's width: the frame is that wide (so the widget's
// own breakpoints apply: 2 columns or 4), scaled down to fit the column when it is wider.
const stage = document.getElementById("preview-stage");
const widths = document.querySelectorAll("[data-preview-width]");
let previewWidth = 0;
let previewHeight = 0;
const fitPreview = () => {
  if (!stage || !preview || !previewWidth) return;
  const scale = Math.min(1, stage.clientWidth / previewWidth);
  preview.style.width = `${previewWidth}px`;
  preview.style.transform = scale < 1 ? `scale(${scale})` : "";
  if (previewHeight) {
    preview.style.height = `${previewHeight}px`;
    stage.style.height = `${Math.ceil(previewHeight * scale)}px`;
  }
};
const showAt = (width) => {
  previewWidth = width;
  for (const b of widths) b.setAttribute("aria-pressed", String(Number(b.dataset.previewWidth) === width));
  fitPreview();
};
if (stage && widths.length) {
  for (const b of widths) b.addEventListener("click", () => showAt(Number(b.dataset.previewWidth)));
  showAt(stage.clientWidth >= 700 ? 1200 : 390);
  window.addEventListener("resize", fitPreview);
}

// Meta appends "#_" or "#_=_" to the address it sends people back to; it means nothing here.
if (location.hash === "#_" || location.hash === "#_=_") {
  history.replaceState(null, "", location.pathname + location.search);
}

// Previews of widgets take the height their document reports (as embed.js does on websites),
// rather than scrolling inside a box. Only our own preview frames are listened to.
window.addEventListener("message", (event) => {
  if (!event.data || event.data.feedkeeper !== "height") return;
  const height = Number(event.data.height);
  if (!Number.isFinite(height) || height <= 0 || height > 100000) return;
  for (const frame of document.querySelectorAll("iframe.posts-preview, #widget-preview")) {
    if (frame.contentWindow !== event.source) continue;
    if (frame === preview && previewWidth) {
      previewHeight = Math.ceil(height) + 2;
      fitPreview();
    } else {
      frame.style.height = `${Math.ceil(height) + 2}px`;
    }
  }
});

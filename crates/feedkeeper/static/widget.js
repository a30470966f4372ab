// feedkeeper widget: the slider's buttons, the lightbox, and the document's height for the page
// that frames it. Captions are never turned into markup here: the lightbox shows copies of nodes
// the server rendered (and escaped), and media addresses are set as properties.
(function () {
  "use strict";
  var root = document.getElementById("fk");
  if (!root) return;
  var posts = document.getElementById("fk-posts");

  // The slider: move by one screenful.
  var prev = root.querySelector(".fk-prev"), next = root.querySelector(".fk-next");
  function slide(direction) {
    posts.scrollBy({ left: direction * posts.clientWidth, behavior: "smooth" });
  }
  if (prev) prev.addEventListener("click", function () { slide(-1); });
  if (next) next.addEventListener("click", function () { slide(1); });

  // The lightbox.
  var dialog = document.getElementById("fk-lightbox");
  if (dialog && root.dataset.lightbox === "true") {
    var body = dialog.querySelector(".fk-lightbox-body");
    root.addEventListener("click", function (event) {
      var open = event.target.closest(".fk-open");
      if (!open || event.ctrlKey || event.metaKey || event.shiftKey) return;
      var full = open.parentElement.querySelector(".fk-full");
      if (!full) return;
      event.preventDefault();
      var copy = full.cloneNode(true);
      copy.hidden = false;
      copy.querySelectorAll("[data-src]").forEach(function (media) {
        media.src = media.getAttribute("data-src");
      });
      body.replaceChildren.apply(body, Array.prototype.slice.call(copy.childNodes));
      dialog.showModal();
      report(false);
    });
    dialog.querySelector(".fk-close").addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("click", function (event) { if (event.target === dialog) dialog.close(); });
    dialog.addEventListener("close", function () {
      body.querySelectorAll("video").forEach(function (v) { v.pause(); });
      body.replaceChildren();
      report(false);
    });
  }

  // The height, for embed.js on the framing page (only a number is sent).
  // A message sent while the framing page is still setting the frame up can be missed, so the
  // height is sent again once loaded, and whenever the page asks.
  var last = 0;
  function report(force) {
    // The content's own height (the document's scrollHeight never drops below the frame's).
    var height = Math.ceil(root.getBoundingClientRect().bottom + window.scrollY);
    if (dialog && dialog.open) height = Math.max(height, 560);
    if ((height === last && force !== true) || window.parent === window) return;
    last = height;
    window.parent.postMessage({ feedkeeper: "height", height: height }, "*");
  }
  if (window.ResizeObserver) {
    new ResizeObserver(function () { report(false); }).observe(document.documentElement);
  }
  window.addEventListener("load", function () { report(true); });
  window.addEventListener("message", function (event) {
    if (event.source === window.parent && event.data && event.data.feedkeeper === "measure") {
      report(true);
    }
  });
  report(false);
})();

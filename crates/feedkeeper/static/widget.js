// feedkeeper widget: the slider's buttons, the lightbox, and the document's height for the page
// that frames it. Captions are never turned into markup here: the lightbox shows copies of nodes
// the server rendered (and escaped), and media addresses are set as properties.
(function () {
  "use strict";
  var root = document.getElementById("fk");
  if (!root) return;
  // The host page's scheme, from embed.js (the address's fragment: never sent to a server, so
  // every page shares one cached document): "Automatic" follows it.
  var scheme = /(?:^#|&)scheme=(dark|light)(?:&|$)/.exec(location.hash);
  if (scheme) document.documentElement.classList.add("fk-host-" + scheme[1]);
  var posts = document.getElementById("fk-posts");

  // Visitors who ask for less motion get jumps, not smooth scrolling.
  var still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var motion = still ? "auto" : "smooth";

  // The slider: move by one screenful; each arrow is disabled at its end, and both sit
  // across the middle of the pictures (not over captions below them).
  var prev = root.querySelector(".fk-prev"), next = root.querySelector(".fk-next");
  function slide(direction) {
    posts.scrollBy({ left: direction * posts.clientWidth, behavior: motion });
  }
  // Disabling the focused button would drop the focus to the page: it moves to the other one.
  function able(button, other, off) {
    if (off && document.activeElement === button) other.focus();
    button.disabled = off;
  }
  function arrows() {
    var end = posts.scrollWidth - posts.clientWidth - 1;
    able(prev, next, posts.scrollLeft <= 1);
    able(next, prev, posts.scrollLeft >= end);
    var tile = posts.querySelector(".fk-open");
    if (tile) {
      var middle = tile.offsetTop + tile.offsetHeight / 2;
      prev.style.top = next.style.top = Math.round(middle) + "px";
    }
  }
  if (prev && next) {
    prev.addEventListener("click", function () { slide(-1); });
    next.addEventListener("click", function () { slide(1); });
    posts.addEventListener("scroll", arrows, { passive: true });
    window.addEventListener("resize", arrows);
    window.addEventListener("load", arrows);
    arrows();
  }

  // An album in the lightbox: previous/next buttons, the arrow keys and swiping (the pictures
  // are a scroll-snapping row), with the position shown ("2 / 5").
  var carousel = null;
  function albumOf(stage) {
    var media = stage.querySelector(".fk-media");
    var back = stage.querySelector(".fk-item-prev"), forth = stage.querySelector(".fk-item-next");
    var count = stage.querySelector(".fk-count");
    if (!media || !back || !forth || !count) return null;
    var total = media.children.length;
    function at() { return Math.round(media.scrollLeft / Math.max(1, media.clientWidth)); }
    var shown = -1;
    function show() {
      var i = Math.min(total - 1, Math.max(0, at()));
      if (i === shown) return;
      shown = i;
      // A live region: written only when the position changes.
      count.textContent = (i + 1) + " / " + total;
      able(back, forth, i <= 0);
      able(forth, back, i >= total - 1);
    }
    function go(step) {
      var i = Math.min(total - 1, Math.max(0, at() + step));
      media.scrollTo({ left: i * media.clientWidth, behavior: motion });
    }
    back.addEventListener("click", function () { go(-1); });
    forth.addEventListener("click", function () { go(1); });
    media.addEventListener("scroll", show, { passive: true });
    show();
    return { go: go };
  }

  // Where the visitor sees this frame (from embed.js; unknown when framed without it).
  var seen = null;
  window.addEventListener("message", function (event) {
    if (event.source !== window.parent || !event.data) return;
    // The framing page's veil was clicked: close the lightbox.
    if (event.data.feedkeeper === "close") {
      if (dialog && dialog.open) dialog.close();
      return;
    }
    if (event.data.feedkeeper !== "viewport") return;
    var top = Number(event.data.top), height = Number(event.data.height);
    if (isFinite(top) && isFinite(height) && top >= 0 && height > 0) seen = { top: top, height: height };
  });
  if (window.parent !== window) window.parent.postMessage({ feedkeeper: "where" }, "*");

  // The lightbox.
  var dialog = document.getElementById("fk-lightbox");
  // A modal dialog centres in the frame's own viewport: the whole (tall) frame, mostly off the
  // screen on a phone. It goes where the visitor looks instead: the part of the frame on
  // their screen, or else from the tapped post down.
  function place(tapped) {
    var docHeight = document.documentElement.scrollHeight;
    var top, room;
    if (seen && window.parent !== window) {
      top = seen.top + 8;
      room = seen.height - 16;
    } else if (window.parent !== window) {
      top = Math.max(0, tapped.getBoundingClientRect().top + window.scrollY - 8);
      room = Math.min(window.screen ? window.screen.height : 800, docHeight) - 16;
    } else {
      return; // Opened as a page of its own: the browser's own centring is right.
    }
    // A short frame (a one-row slider) grows to show a usable lightbox.
    room = Math.max(360, room);
    dialog.style.position = "absolute";
    dialog.style.margin = "0 auto";
    dialog.style.top = Math.round(Math.max(0, Math.min(top, docHeight - room))) + "px";
    dialog.style.maxHeight = Math.round(room) + "px";
    dialog.style.setProperty("--fk-room", Math.round(room) + "px");
    dialog.style.overflow = "auto";
  }
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
      // Nothing hidden is fetched before it is shown: pictures and video posters load now.
      copy.querySelectorAll("[data-src]").forEach(function (media) {
        media.src = media.getAttribute("data-src");
      });
      copy.querySelectorAll("[data-poster]").forEach(function (video) {
        video.poster = video.getAttribute("data-poster");
      });
      body.replaceChildren.apply(body, Array.prototype.slice.call(copy.childNodes));
      // Placed first: opening focuses the close button, which must already be on the screen.
      place(open);
      dialog.showModal();
      // The framing page dims itself around the frame (embed.js).
      if (window.parent !== window) window.parent.postMessage({ feedkeeper: "lightbox", open: true }, "*");
      var stage = body.querySelector(".fk-stage");
      carousel = stage ? albumOf(stage) : null;
      report(false);
    });
    dialog.addEventListener("keydown", function (event) {
      if (!carousel || event.altKey || event.ctrlKey || event.metaKey) return;
      // A focused video keeps its own arrow keys (seeking).
      if (event.target && event.target.tagName === "VIDEO") return;
      if (event.key === "ArrowLeft") { carousel.go(-1); event.preventDefault(); }
      if (event.key === "ArrowRight") { carousel.go(1); event.preventDefault(); }
    });
    dialog.querySelector(".fk-close").addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("click", function (event) { if (event.target === dialog) dialog.close(); });
    dialog.addEventListener("close", function () {
      if (window.parent !== window) window.parent.postMessage({ feedkeeper: "lightbox", open: false }, "*");
      body.querySelectorAll("video").forEach(function (v) { v.pause(); });
      body.replaceChildren();
      carousel = null;
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
    // While the lightbox is open the frame keeps its height (the lightbox fits the visible
    // part), unless it needs more to show the lightbox at all.
    if (dialog && dialog.open) {
      height = Math.max(height, Math.ceil(dialog.getBoundingClientRect().bottom + window.scrollY));
    }
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

// feedkeeper embed script. Put where the feed should appear:
//   <div class="feedkeeper-widget" data-widget="WIDGET_ID"></div>
//   <script src="https://YOUR-FEEDKEEPER/embed.js" async></script>
// Each such element gets an iframe of the widget that takes the height of its content. With
// data-mode="inline", the posts are built into the page itself from the widget's JSON feed
// (text is set as text, never as markup).
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script ? new URL(script.src).origin : "";
  if (!base) return;
  var frames = [];

  // Whether the page around `el` is dark: the first background that is not transparent, from
  // `el` up, by its luminance (a widget themed "Automatic" follows it).
  function scheme(el) {
    // Any colour syntax (rgb, oklch, lab, color()) is read back as pixels from a canvas.
    var pen = document.createElement("canvas").getContext("2d");
    for (var node = el; node && node.nodeType === 1; node = node.parentElement) {
      var paint = getComputedStyle(node).backgroundColor;
      if (!pen || !paint) continue;
      pen.clearRect(0, 0, 1, 1);
      pen.fillStyle = "rgba(0,0,0,0)";
      pen.fillStyle = paint;
      pen.fillRect(0, 0, 1, 1);
      var px = pen.getImageData(0, 0, 1, 1).data;
      if (px[3] < 128) continue;
      var lum = (0.2126 * px[0] + 0.7152 * px[1] + 0.0722 * px[2]) / 255;
      return lum < 0.5 ? "dark" : "light";
    }
    // Nothing painted: the canvas is the browser's, light unless the page opts into dark.
    var declared = getComputedStyle(document.documentElement).colorScheme || "";
    return /^dark/.test(declared) && window.matchMedia &&
      window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  // The space the embed code reserved (its padding-top, computed for the element's width), in
  // pixels; the frame takes it over, so nothing on the page moves.
  function reserved(el) {
    var pad = parseFloat(getComputedStyle(el).paddingTop) || 0;
    el.style.paddingTop = "0";
    return pad > 0 ? pad : null;
  }

  function frame(el, id) {
    var iframe = document.createElement("iframe");
    iframe.src = base + "/w/" + encodeURIComponent(id) + "#scheme=" + scheme(el);
    iframe.setAttribute("data-widget", id);
    iframe.title = el.getAttribute("data-title") || "Instagram feed";
    iframe.loading = "lazy";
    iframe.setAttribute("scrolling", "no");
    var room = reserved(el);
    iframe.style.cssText = "width:100%;border:0;display:block;overflow:hidden;height:" +
      (el.getAttribute("data-height") || room || "400") + "px";
    // Once loaded, ask for the height (in case its first report came too early). The widget
    // runs sandboxed, in an origin of its own, so the message cannot name ours.
    iframe.addEventListener("load", function () {
      if (iframe.contentWindow) iframe.contentWindow.postMessage({ feedkeeper: "measure" }, "*");
    });
    el.replaceChildren(iframe);
    frames.push(iframe);
  }

  function inline(el, id) {
    el.style.paddingTop = "0";
    fetch(base + "/w/" + encodeURIComponent(id) + ".json", { credentials: "omit" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (feed) {
        var list = document.createElement("ul");
        list.className = "feedkeeper-posts";
        list.style.cssText = "list-style:none;margin:0;padding:0;display:grid;gap:8px;" +
          "grid-template-columns:repeat(auto-fill,minmax(140px,1fr))";
        feed.posts.forEach(function (post) {
          if (!post.display_url) return;
          var item = document.createElement("li");
          var link = document.createElement("a");
          if (post.permalink) link.href = post.permalink;
          link.target = "_blank";
          link.rel = "noopener noreferrer";
          var img = document.createElement("img");
          img.src = post.display_url;
          img.alt = post.alt_text || post.caption_text || "";
          img.loading = "lazy";
          img.style.cssText = "display:block;width:100%;aspect-ratio:1/1;object-fit:cover";
          link.appendChild(img);
          item.appendChild(link);
          list.appendChild(item);
        });
        el.replaceChildren(list);
      })
      .catch(function () { frame(el, id); });
  }

  function mount() {
    document.querySelectorAll(".feedkeeper-widget[data-widget]:not([data-mounted])")
      .forEach(function (el) {
        el.setAttribute("data-mounted", "");
        var id = el.getAttribute("data-widget");
        if (el.getAttribute("data-mode") === "inline") inline(el, id); else frame(el, id);
      });
  }

  // Heights come from the widgets' own documents; only a number from one of our frames counts
  // (a sandboxed frame's origin reads "null": the frame itself is what is checked). A widget
  // that does not exist (or was deleted) collapses, and says so to the site's developer.
  window.addEventListener("message", function (event) {
    if (event.origin !== "null" && event.origin !== base) return;
    if (!event.data) return;
    var kind = event.data.feedkeeper;
    frames.forEach(function (iframe) {
      if (iframe.contentWindow !== event.source) return;
      if (kind === "missing") {
        iframe.style.height = "0";
        iframe.style.display = "none";
        var status = Number(event.data.status) === 410 ? "was deleted by its owner" : "does not exist";
        if (window.console) console.warn("feedkeeper: the widget " + iframe.getAttribute("data-widget") +
          " " + status + " (" + iframe.src + "); check the embed code's data-widget.");
      } else if (kind === "height") {
        var height = Number(event.data.height);
        if (!isFinite(height) || height < 0 || height > 100000) return;
        iframe.style.height = Math.ceil(height) + "px";
        soon();
      } else if (kind === "where") {
        sent = [];
        soon();
      } else if (kind === "lightbox") {
        if (event.data.open) veil(iframe);
        else if (veiled && veiled.iframe === iframe) unveil();
      }
    });
  });

  // While a widget's lightbox is open, the whole page is dimmed (not only the frame) and kept
  // still: it does not scroll, the rest of it is inert (no Tab into what is dimmed), and a
  // click on it or Escape closes the lightbox. The frame is raised above the veil; where the
  // page's own stacking keeps it below (an ancestor with a z-index of its own), there is no
  // veil: a veil over the lightbox would take its clicks. One veil at a time, owned by its
  // frame; it goes when that frame says its lightbox closed, reloads, or leaves the page.
  var veiled = null;
  function veil(iframe) {
    if (veiled && veiled.iframe !== iframe) return;
    unveil();
    var cover = document.createElement("div");
    cover.setAttribute("data-feedkeeper-veil", "");
    cover.setAttribute("aria-hidden", "true");
    cover.style.cssText = "position:fixed;top:0;left:0;right:0;bottom:0;margin:0;padding:0;" +
      "border:0;background:rgba(0,0,0,.6);z-index:2147483646";
    var root = document.documentElement;
    var state = { cover: cover, iframe: iframe, position: iframe.style.position,
      zIndex: iframe.style.zIndex, overflow: root.style.overflow, inert: [] };
    if (getComputedStyle(iframe).position === "static") iframe.style.position = "relative";
    iframe.style.zIndex = "2147483647";
    document.body.appendChild(cover);
    veiled = state;
    var r = iframe.getBoundingClientRect();
    var x = Math.min(Math.max((Math.max(r.left, 0) + Math.min(r.right, window.innerWidth)) / 2, 0), window.innerWidth - 1);
    var y = Math.min(Math.max((Math.max(r.top, 0) + Math.min(r.bottom, window.innerHeight)) / 2, 0), window.innerHeight - 1);
    if (document.elementFromPoint(x, y) !== iframe) { unveil(); return; }
    root.style.overflow = "hidden";
    // Everything beside the frame's line of ancestors is inert while the lightbox is open.
    for (var node = iframe; node && node !== document.body && node.parentElement; node = node.parentElement) {
      Array.prototype.forEach.call(node.parentElement.children, function (sibling) {
        if (sibling === node || sibling === cover || sibling.inert) return;
        sibling.inert = true;
        state.inert.push(sibling);
      });
    }
    function close() {
      iframe.focus();
      if (iframe.contentWindow) iframe.contentWindow.postMessage({ feedkeeper: "close" }, "*");
      unveil();
    }
    cover.addEventListener("click", close);
    state.onKey = function (event) { if (event.key === "Escape") close(); };
    document.addEventListener("keydown", state.onKey);
    state.onLoad = function () { unveil(); };
    iframe.addEventListener("load", state.onLoad);
    if (window.MutationObserver) {
      state.watch = new MutationObserver(function () { if (!iframe.isConnected) unveil(); });
      state.watch.observe(document.body, { childList: true, subtree: true });
    }
  }
  function unveil() {
    var state = veiled;
    if (!state) return;
    veiled = null;
    state.cover.remove();
    state.iframe.style.position = state.position;
    state.iframe.style.zIndex = state.zIndex;
    document.documentElement.style.overflow = state.overflow;
    state.inert.forEach(function (el) { el.inert = false; });
    if (state.onKey) document.removeEventListener("keydown", state.onKey);
    if (state.onLoad) state.iframe.removeEventListener("load", state.onLoad);
    if (state.watch) state.watch.disconnect();
  }

  // Which part of each frame the visitor sees (the frame is as tall as its content, so its
  // own viewport is not the screen): the widget opens its lightbox there.
  var sent = [];
  function viewports() {
    frames.forEach(function (iframe, i) {
      if (!iframe.contentWindow) return;
      var rect = iframe.getBoundingClientRect();
      var top = Math.max(0, -rect.top);
      var height = Math.max(0, Math.min(rect.bottom, window.innerHeight) - Math.max(rect.top, 0));
      var key = Math.round(top) + ":" + Math.round(height);
      if (sent[i] === key) return;
      sent[i] = key;
      iframe.contentWindow.postMessage({ feedkeeper: "viewport", top: top, height: height }, "*");
    });
  }
  var pending = false;
  function soon() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; viewports(); });
  }
  // Capturing: pages that scroll an inner container, not the window, count too.
  window.addEventListener("scroll", soon, { passive: true, capture: true });
  window.addEventListener("resize", soon);

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();

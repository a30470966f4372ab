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

  function frame(el, id) {
    var iframe = document.createElement("iframe");
    iframe.src = base + "/w/" + encodeURIComponent(id);
    iframe.title = el.getAttribute("data-title") || "Instagram feed";
    iframe.loading = "lazy";
    iframe.setAttribute("scrolling", "no");
    iframe.style.cssText = "width:100%;border:0;display:block;overflow:hidden;height:" +
      (el.getAttribute("data-height") || "400") + "px";
    // Once loaded, ask for the height (in case its first report came too early). The widget
    // runs sandboxed, in an origin of its own, so the message cannot name ours.
    iframe.addEventListener("load", function () {
      if (iframe.contentWindow) iframe.contentWindow.postMessage({ feedkeeper: "measure" }, "*");
    });
    el.replaceChildren(iframe);
    frames.push(iframe);
  }

  function inline(el, id) {
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
  // (a sandboxed frame's origin reads "null": the frame itself is what is checked).
  window.addEventListener("message", function (event) {
    if (event.origin !== "null" && event.origin !== base) return;
    if (!event.data || event.data.feedkeeper !== "height") return;
    var height = Number(event.data.height);
    if (!isFinite(height) || height < 0 || height > 100000) return;
    frames.forEach(function (iframe) {
      if (iframe.contentWindow === event.source) iframe.style.height = Math.ceil(height) + "px";
    });
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();

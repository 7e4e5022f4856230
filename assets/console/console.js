// toolgate console: the only script, and only for the live parts. Served
// from the binary as a file: the Content-Security-Policy allows no inline
// script, so everything the page does without this file still works
// (forms post, pages reload), this only keeps the inbox and the waiting
// times current.
"use strict";

(function () {
  // "waiting 12s": each element carries the wait at render time; count on.
  var base = new WeakMap();

  function span(ms) {
    var s = Math.floor(ms / 1000);
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    s = s % 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + s + "s";
    return s + "s";
  }

  function tick() {
    var now = performance.now();
    document.querySelectorAll("[data-waited]").forEach(function (el) {
      if (!base.has(el)) base.set(el, now - Number(el.getAttribute("data-waited")));
      el.textContent = span(now - base.get(el));
    });
  }
  setInterval(tick, 1000);

  // Merges a freshly rendered list into the page by approval id: rows that
  // stay are kept as they are (with whatever the operator typed), new ones
  // come in, answered ones go.
  function merge(html) {
    var current = document.getElementById("inbox-items");
    var template = document.createElement("template");
    template.innerHTML = html;
    var fresh = template.content.getElementById("inbox-items");
    if (!current || !fresh) return;
    var keep = {};
    Array.prototype.forEach.call(fresh.children, function (el) { keep[el.id] = true; });
    Array.prototype.slice.call(current.children).forEach(function (el) {
      if (!keep[el.id]) el.remove();
    });
    var previous = null;
    Array.prototype.slice.call(fresh.children).forEach(function (el) {
      var existing = el.id ? document.getElementById(el.id) : null;
      var node = existing && existing.parentNode === current ? existing : el;
      var want = previous ? previous.nextElementSibling : current.firstElementChild;
      if (want !== node) current.insertBefore(node, want);
      previous = node;
    });
    current.setAttribute("data-count", fresh.getAttribute("data-count"));
    var section = document.getElementById("inbox");
    if (section) section.setAttribute("data-count", fresh.getAttribute("data-count"));
    tick();
  }

  var inbox = document.getElementById("inbox");
  var live = document.getElementById("live");
  if (inbox && window.EventSource) {
    var source = new EventSource(inbox.getAttribute("data-events"));
    source.addEventListener("open", function () { if (live) live.setAttribute("data-state", "on"); });
    source.addEventListener("error", function () { if (live) live.setAttribute("data-state", "off"); });
    source.addEventListener("inbox", function (event) { merge(event.data); });
    source.addEventListener("signedout", function () {
      source.close();
      window.location.assign("/console/signin");
    });
  }
})();

// Gridiron dashboard: keeps each page's live region current. The page names
// the events after which its region is read again (data-live) and how often
// it is read anyway (data-every, seconds, for ages and heartbeats); the
// server renders the region, this script only swaps it in.
(function () {
  "use strict";
  var prefix = document.body.dataset.prefix || "";

  // Forms that end, drain, cancel or revoke something ask first.
  document.addEventListener("submit", function (e) {
    var ask = e.target.dataset && e.target.dataset.confirm;
    if (ask && !window.confirm(ask)) e.preventDefault();
  });

  var live = document.getElementById("live");
  if (!live) return;
  var types = (live.dataset.live || "").split(",").filter(Boolean);
  var every = parseInt(live.dataset.every || "0", 10);
  var busy = false, again = false, timer = null;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { headers: { "X-Gridiron-Fragment": "1" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.redirected || r.status === 401) { location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        // A region whose text is selected is left alone until the selection goes.
        var sel = window.getSelection && window.getSelection();
        var reading = sel && !sel.isCollapsed && live.contains(sel.anchorNode);
        if (html !== null && html !== undefined && !reading && live.innerHTML !== html) {
          var next = document.createElement("div");
          next.innerHTML = html;
          patch(live, next);
          live.dispatchEvent(new CustomEvent("gridiron:refreshed", { bubbles: true }));
        }
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; schedule(); }
      });
  }

  // Brings `old`'s children in line with `next`'s, replacing only what
  // differs: an element that did not change (a button under the pointer, a
  // focused field, a row being read) stays the same element.
  function patch(old, next) {
    var a = old.childNodes, b = next.childNodes;
    if (a.length !== b.length) {
      while (old.firstChild) old.removeChild(old.firstChild);
      while (next.firstChild) old.appendChild(next.firstChild);
      return;
    }
    for (var i = a.length - 1; i >= 0; i--) {
      var x = a[i], y = b[i];
      if (x.nodeType === 1 && y.nodeType === 1 && x.tagName === y.tagName && sameAttributes(x, y)) {
        if (x.innerHTML !== y.innerHTML) patch(x, y);
      } else if (x.nodeType === 3 && y.nodeType === 3) {
        if (x.nodeValue !== y.nodeValue) x.nodeValue = y.nodeValue;
      } else if (!x.isEqualNode(y)) {
        old.replaceChild(y, x);
      }
    }
  }

  // Equal attributes, but for a <details> element's `open`, which is the
  // reader's to set.
  function sameAttributes(x, y) {
    var names = function (e) {
      var out = [];
      for (var i = 0; i < e.attributes.length; i++) if (e.attributes[i].name !== "open") out.push(e.attributes[i].name);
      return out;
    };
    var nx = names(x);
    if (nx.length !== names(y).length) return false;
    for (var i = 0; i < nx.length; i++) {
      if (y.getAttribute(nx[i]) !== x.getAttribute(nx[i])) return false;
    }
    return true;
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(function () { timer = null; refresh(); }, 250);
  }

  if (types.length && window.EventSource) {
    var feed = null;
    var connect = function () {
      feed = new EventSource(prefix + "/ui/events?type=" + encodeURIComponent(types.join(",")));
      types.forEach(function (t) { feed.addEventListener(t, schedule); });
      // A feed that dropped this page (it read too slowly) is reopened, and
      // what was missed is read in one refresh.
      feed.addEventListener("dropped", function () { feed.close(); schedule(); setTimeout(connect, 1000); });
      feed.onopen = schedule;
    };
    connect();
  }
  if (every > 0) setInterval(schedule, every * 1000);
})();

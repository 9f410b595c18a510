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
          live.innerHTML = html;
          live.dispatchEvent(new CustomEvent("gridiron:refreshed", { bubbles: true }));
        }
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; schedule(); }
      });
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

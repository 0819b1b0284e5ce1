// Live pages without a polling loop: the server says when something changed (server-sent
// events on /live); the page then fetches itself once and swaps its [data-region] parts.
// Masked values a person revealed, and forms being filled in, are left as they are.
(function () {
  "use strict";
  var body = document.body;
  var stream = body.getAttribute("data-live");
  var busy = false, again = false;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { headers: { "X-Tidings-Live": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        fresh.querySelectorAll("[data-region]").forEach(function (part) {
          var here = document.getElementById(part.id);
          if (!here || here.contains(document.activeElement) && document.activeElement.form) return;
          here.replaceWith(part);
        });
        body.dispatchEvent(new CustomEvent("tidings:updated"));
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  if (stream && window.EventSource) {
    var source = new EventSource(stream);
    var state = document.getElementById("live-state");
    source.addEventListener("change", refresh);
    var opened = false;
    source.onopen = function () {
      if (state) { state.hidden = false; state.textContent = "live"; }
      if (opened) refresh();  // back after a restart: catch up on what was missed meanwhile
      opened = true;
    };
    source.onerror = function () { if (state) { state.textContent = "reconnecting…"; } };
  }

  // Reveal one masked phone number or email: asked of the server, one at a time.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-reveal]");
    if (!button) return;
    event.preventDefault();
    fetch(button.getAttribute("data-reveal"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (found) {
        if (!found) return;
        var shown = document.createElement("span");
        shown.className = "revealed";
        shown.textContent = found.value;
        button.replaceWith(shown);
      });
  });
})();

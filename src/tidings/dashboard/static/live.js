// Live pages without a polling loop: the server says when something changed (server-sent
// events on /live); the page then fetches itself once and swaps its [data-region] parts.
// Values a person revealed stay revealed, and a region holding a form being filled in is left
// as it is. A hidden tab closes its stream (browsers allow few connections per server) and
// catches up when it is shown again.
(function () {
  "use strict";
  var body = document.body;
  var stream = body.getAttribute("data-live");
  var state = document.getElementById("live-state");
  var revealed = {};  // reveal URL -> the value the server gave
  var busy = false, again = false, source = null;

  function showRevealed(root) {
    root.querySelectorAll("[data-reveal]").forEach(function (button) {
      var value = revealed[button.getAttribute("data-reveal")];
      if (value === undefined) return;
      var shown = document.createElement("span");
      shown.className = "revealed";
      shown.textContent = value;
      (button.closest(".contact") || button).replaceWith(shown);
    });
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        fresh.querySelectorAll("[data-region]").forEach(function (part) {
          var here = document.getElementById(part.id);
          var typing = document.activeElement && document.activeElement.form;
          if (!here || (typing && here.contains(document.activeElement))) return;
          showRevealed(part);
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

  function connect() {
    if (source || !stream || !window.EventSource) return;
    source = new EventSource(stream);
    source.addEventListener("change", refresh);
    // Back after a restart or a hidden spell, the stream says `change` itself when the store
    // moved since the page was drawn (it carries what the page saw).
    source.onopen = function () {
      if (state) { state.hidden = false; state.textContent = "live"; }
    };
    source.onerror = function () { if (state) { state.textContent = "reconnecting…"; } };
  }

  function disconnect() {
    if (!source) return;
    source.close();
    source = null;
    if (state) { state.textContent = "paused"; }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) disconnect(); else connect();
  });
  if (!document.hidden) connect();

  // Reveal one masked phone number or email: asked of the server, one at a time.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-reveal]");
    if (!button) return;
    event.preventDefault();
    var url = button.getAttribute("data-reveal");
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (found) {
        if (!found) return;
        revealed[url] = found.value;
        showRevealed(document);
      });
  });
})();

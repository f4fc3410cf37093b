// guardian console: the one script. Every page reads without it; it only keeps "at a glance" current.
(function () {
  "use strict";
  var panel = document.getElementById("glance");
  if (!panel) { return; }
  var url = panel.getAttribute("data-refresh");
  var every = 5000;
  function refresh() {
    if (document.hidden) { return; }
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) { if (html !== null) { panel.innerHTML = html; panel.setAttribute("data-refreshed", String(Date.now())); } })
      .catch(function () { /* the sidecar restarting: try again at the next tick */ });
  }
  setInterval(refresh, every);
}());

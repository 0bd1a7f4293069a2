// Onshi Watch: refreshes the live part of a page without a full reload. No inline script
// anywhere (the Content-Security-Policy forbids it); this file is the only script.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const seconds = parseInt(live.dataset.refresh || "0", 10);
  if (!(seconds > 0)) return;
  // Don't replace what someone is typing into.
  const busy = () => live.contains(document.activeElement) &&
    ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  async function refresh() {
    if (document.hidden || busy()) return;
    try {
      const response = await fetch(window.location.href, {
        headers: { "Accept": "text/html" },
        credentials: "same-origin",
        redirect: "manual",
      });
      if (!response.ok) return; // signed out or an error: leave the page as it is
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("live");
      if (fresh && !busy()) live.replaceChildren(...fresh.childNodes);
    } catch (_) {
      // The server is unreachable for a moment; try again at the next tick.
    }
  }
  window.setInterval(refresh, seconds * 1000);
})();

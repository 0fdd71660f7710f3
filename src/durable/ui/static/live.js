// Live refresh and confirmations for the durable UI; no dependencies.
// With "Live refresh" ticked, a page marked data-live fetches itself every
// few seconds and swaps in the new <main>; the choice is kept per browser.
(function () {
  "use strict";
  var PERIOD_MS = 3000;
  var KEY = "durable-ui-live";
  var timer = null;

  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Durable-Live": "1" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("content");
        var current = document.getElementById("content");
        if (!fresh || !current) { return; }
        var focused = document.activeElement && document.activeElement.closest("form");
        if (focused) { return; } // never throw away what the user is typing
        current.replaceWith(fresh);
        setUp();
      })
      .catch(function () { /* the next tick tries again */ });
  }

  function setUp() {
    var content = document.getElementById("content");
    var box = document.getElementById("live");
    if (timer !== null) { clearInterval(timer); timer = null; }
    if (box) {
      box.checked = window.localStorage.getItem(KEY) === "1";
      box.addEventListener("change", function () {
        window.localStorage.setItem(KEY, box.checked ? "1" : "0");
        setUp();
      });
    }
    if (box && box.checked && content && content.hasAttribute("data-live")) {
      timer = setInterval(refresh, PERIOD_MS);
    }
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", setUp);
})();

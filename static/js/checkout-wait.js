// Back from Stripe: ask every two seconds whether the webhook has confirmed the payment,
// and reload the page once it has. The status line is a live region; the "Check again"
// link works without this script.
(function () {
  var box = document.getElementById("checkout-wait");
  if (!box || !window.fetch) { return; }
  var session = box.getAttribute("data-session");
  var tries = 0;
  function check() {
    tries += 1;
    fetch("/api/v1/memberships/checkouts/" + encodeURIComponent(session), {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (body && (body.checkout === "complete" || body.checkout === "failed" || body.checkout === "expired")) {
          window.location.reload();
        } else if (tries < 60) {
          window.setTimeout(check, 2000);
        }
      })
      .catch(function () { if (tries < 60) { window.setTimeout(check, 4000); } });
  }
  window.setTimeout(check, 1000);
})();

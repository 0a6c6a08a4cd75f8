// The browser's time zone (IANA name), so times can be shown in it from the first visit. The
// sign-in form sends it in its hidden field; other pages of a signed-in user who has no zone
// yet (they came in through an invitation, setup or reset link) send it once and reload, so
// the times on the page are local. The server keeps it only when the account has none and the
// name is valid.
function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch {
    return "";
  }
}

const zone = browserZone();
const field = document.querySelector("input[name=tz]");
const script = document.querySelector("script[data-post][src$='zone.js']");
if (field) {
  field.value = zone;
} else if (script && zone && zone !== "UTC") {
  const body = new URLSearchParams({ tz: zone });
  fetch(script.dataset.post, {
    method: "POST",
    body,
    headers: { "X-CSRFToken": script.dataset.csrf },
    credentials: "same-origin",
  }).then((reply) => {
    if (reply.status === 204 && document.querySelector("time")) window.location.reload();
  });
}

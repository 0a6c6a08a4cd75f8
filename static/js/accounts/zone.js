// Sign-in form: send the browser's time zone (IANA name), so times can be shown in it from the
// first visit. The server keeps it only when the account has none and the name is valid.
const field = document.querySelector("input[name=tz]");
if (field) {
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch {
    field.value = "";
  }
}

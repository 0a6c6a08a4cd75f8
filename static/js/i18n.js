// Translated strings for the page's language: the server puts its catalogue (msgid -> text,
// or a list of plural forms) in <script id="i18n-catalogue" type="application/json">; English
// needs none, its ids are the text. Placeholders are Python's: t("Hello %(name)s", {name}).
const element = document.getElementById("i18n-catalogue");
const catalogue = element ? JSON.parse(element.textContent || "{}") : {};

/** The page's language ("en", "ko"), for Intl date, time and number formats. */
export const language = document.documentElement.lang || "en";

function fill(text, params) {
  return text.replace(/%\((\w+)\)[sd]/g, (_, name) => String(params[name] ?? ""));
}

/** ``msgid`` in the page's language, with ``%(name)s`` placeholders filled from ``params``. */
export function t(msgid, params = {}) {
  const found = catalogue[msgid];
  return fill(typeof found === "string" ? found : msgid, params);
}

/** The singular or plural text for ``n``; ``n`` is also the ``%(n)s`` placeholder. */
export function tn(singular, plural, n, params = {}) {
  const forms = catalogue[singular];
  const rule = new Intl.PluralRules(language).select(n);
  let text = n === 1 ? singular : plural;
  if (Array.isArray(forms)) text = forms[Math.min(rule === "one" ? 0 : 1, forms.length - 1)];
  return fill(text, { n: String(n), ...params });
}

/** The user's time zone (their profile's, else UTC), as the server shows times in. */
export const timeZone = document.documentElement.dataset.timezone || undefined;

/** A time of day in the page's language and the user's zone, 24-hour where the language
 * writes it so. */
export function formatTime(date) {
  const options = { hour: "numeric", minute: "2-digit", timeZone };
  try {
    return new Intl.DateTimeFormat(language, options).format(date);
  } catch {  // a zone this browser does not know
    return new Intl.DateTimeFormat(language, { ...options, timeZone: undefined }).format(date);
  }
}

// MP4 export: ask the server to make one, show its progress, then the download link.

import { language, t } from "../i18n.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const percent = new Intl.NumberFormat(language, { style: "percent" });

export function setupExport(root) {
  if (!root.dataset.export) return; // share-link viewers download the WebM only
  const button = $("export-btn");
  let timer = null;

  function show(state) {
    const running = state.status === "running";
    button.hidden = running || state.status === "ready";
    button.textContent = state.status === "failed" ? t("Try the MP4 again") : t("Prepare an MP4 (H.264)");
    $("export-progress").hidden = !running;
    $("export-bar").value = state.progress || 0;
    $("export-text").textContent = running ? t("Preparing the MP4… %(percent)s", { percent: percent.format(state.progress || 0) }) : "";
    const link = $("export-link");
    link.hidden = state.status !== "ready";
    if (state.url) link.href = state.url;
    $("export-error").hidden = !state.error;
    $("export-error").textContent = state.error ? t("The MP4 could not be made: %(error)s", { error: state.error }) : "";
    clearTimeout(timer);
    if (running) timer = setTimeout(poll, POLL_MS);
  }

  async function call(url, options) {
    try {
      const response = await fetch(url, { credentials: "same-origin", ...options });
      const body = await response.json().catch(() => ({}));
      if (body.export) show(body.export);
      else show({ status: "failed", error: body.error || t("the server answered %(status)s", { status: response.status }) });
    } catch {
      show({ status: "failed", error: t("the server could not be reached") });
    }
  }

  function poll() {
    call(root.dataset.exportStatus, { cache: "no-store" });
  }

  button.addEventListener("click", () => {
    button.disabled = true;
    call(root.dataset.export, { method: "POST", headers: { "X-CSRFToken": root.dataset.csrf } })
      .finally(() => { button.disabled = false; });
  });
  poll();
}

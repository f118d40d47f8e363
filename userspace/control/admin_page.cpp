// The settings page: plain HTML and JavaScript in one string, no external assets, no build
// step. Shaped like MKE's UI steps: Admin Settings > Audit Logs > Configure Audit Log Level
// (None / Metadata / Request) > Save, with the support-dump checkbox and live counters.
#include "control/admin_api.h"

namespace mat::control {

const std::string& AdminPage() {
  static const std::string page = R"PAGE(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mke-audit-tap: Admin Settings</title>
<style>
body { font-family: sans-serif; margin: 0; color: #222; }
header { background: #1d2b36; color: #fff; padding: 10px 20px; font-size: 18px; }
nav { float: left; width: 180px; padding: 16px; }
nav a { display: block; padding: 6px 0; color: #1d2b36; text-decoration: none; }
nav a.active { font-weight: bold; }
main { margin-left: 220px; padding: 16px 24px; max-width: 760px; }
fieldset { border: 1px solid #ccc; margin-bottom: 16px; }
label { display: block; margin: 6px 0; }
button { padding: 6px 18px; }
#status { margin-left: 12px; }
table { border-collapse: collapse; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; font-size: 14px; }
</style>
</head>
<body>
<header>mke-audit-tap &mdash; Admin Settings</header>
<nav><a href="#">Admin Settings</a><a href="#" class="active" id="audit-logs-tab">Audit Logs</a></nav>
<main>
<h2>Audit Logs</h2>
<form id="settings">
<fieldset>
<legend>Configure Audit Log Level</legend>
<label><input type="radio" name="auditLevel" value="" id="level-none"> None: audit logging is disabled</label>
<label><input type="radio" name="auditLevel" value="metadata" id="level-metadata"> Metadata: method, endpoint, user, response status, timestamps, object ids, license key, remote address</label>
<label><input type="radio" name="auditLevel" value="request" id="level-request"> Request: everything of Metadata and the request payload</label>
</fieldset>
<fieldset>
<legend>Support dump</legend>
<label><input type="checkbox" id="support-dump"> Include audit logs in the support dump</label>
</fieldset>
<button type="submit" id="save">Save</button><span id="status"></span>
</form>
<h3>Counters</h3>
<table id="counters"><tr><td>loading&hellip;</td></tr></table>
</main>
<script>
"use strict";
const api = "/api/ucp/config/logging";
let current = null;
function show(settings) {
  current = settings;
  const level = settings.auditLevel === "none" ? "" : settings.auditLevel;
  for (const r of document.querySelectorAll("input[name=auditLevel]")) r.checked = r.value === level;
  document.getElementById("support-dump").checked = !!settings.supportDumpIncludeAuditLogs;
}
function status(text) { document.getElementById("status").textContent = text; }
async function load() {
  const r = await fetch(api);
  if (!r.ok) { status("cannot read the settings: HTTP " + r.status); return; }
  show(await r.json());
}
document.getElementById("settings").addEventListener("submit", async (e) => {
  e.preventDefault();
  const checked = document.querySelector("input[name=auditLevel]:checked");
  const body = {
    logLevel: current ? current.logLevel : "INFO",
    auditLevel: checked ? checked.value : "",
    supportDumpIncludeAuditLogs: document.getElementById("support-dump").checked
  };
  status("saving\u2026");
  const r = await fetch(api, { method: "PUT", headers: { "Content-Type": "application/json" },
                               body: JSON.stringify(body) });
  const answer = await r.json().catch(() => ({}));
  if (r.ok) { show(answer); status("Saved"); }
  else { status("not saved: " + (answer.error || ("HTTP " + r.status))); }
});
function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); }
async function counters() {
  try {
    const r = await fetch("/metrics");
    if (!r.ok) return;
    const table = document.getElementById("counters");
    table.textContent = "";
    for (const line of (await r.text()).split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const at = line.lastIndexOf(" ");
      const row = table.insertRow();
      cell(row, line.slice(0, at).replace(/^mke_audit_tap_/, ""));
      cell(row, line.slice(at + 1));
    }
  } catch (e) { /* the next round tries again */ }
}
load();
counters();
setInterval(counters, 2000);
</script>
</body>
</html>
)PAGE";
  return page;
}

}  // namespace mat::control

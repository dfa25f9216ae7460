// Ferry's Outlook task pane: pick files, upload each with tus (resumable, in the server's
// part size, retried on its own), then create one share for the To and Cc recipients and
// insert its link at the cursor. What is unfinished is remembered per draft
// (item.sessionData), so a reopened pane asks for the same files again and tus resumes them,
// and the OnMessageSend handler (launchevent.js) can hold the message while they are.
(function () {
  "use strict";

  var ORIGIN = window.location.origin;
  var SESSION_KEY = "ferry";
  var DEFAULT_CHUNK = 64 * 1024 * 1024;
  var strings = window.FerryStrings;
  var t = strings.en;
  var locale = "en";
  var config = { entra: null };
  var partSize = DEFAULT_CHUNK;
  var entries = [];
  var nestedApp = null;
  var insertedOnce = false;

  // ---- text ------------------------------------------------------------------------------

  function pickLanguage(display) {
    var code = String(display || "en").toLowerCase().slice(0, 2);
    return strings[code] ? code : "en";
  }

  function say(key, values) {
    var text = t[key] || strings.en[key] || key;
    return text.replace(/\{(\w+)\}/g, function (_, name) {
      return values && name in values ? String(values[name]) : "";
    });
  }

  // The singular form `<key>One` for n = 1, else `<key>`.
  function count(key, values) {
    return say(values.n === 1 ? key + "One" : key, values);
  }

  function applyStrings() {
    document.documentElement.lang = locale;
    document.querySelectorAll("[data-t]").forEach(function (node) {
      node.textContent = say(node.getAttribute("data-t"));
    });
  }

  function bytes(n) {
    var units = ["B", "kB", "MB", "GB", "TB"];
    var value = n;
    var unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    var digits = unit === 0 || value >= 100 ? 0 : 1;
    return new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(value) + " " + units[unit];
  }

  function percent(part, whole) {
    var share = whole > 0 ? part / whole : 1;
    return new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 0 }).format(share);
  }

  function duration(seconds) {
    if (seconds < 90) return say("secondsLeft", { n: Math.max(1, Math.round(seconds)) });
    if (seconds < 90 * 60) return say("minutesLeft", { n: Math.round(seconds / 60) });
    return say("hoursLeft", { n: Math.round(seconds / 3600) });
  }

  function message(key, values) {
    var box = document.getElementById("messages");
    box.textContent = "";
    if (!key) return;
    var p = document.createElement("p");
    p.textContent = say(key, values);
    box.appendChild(p);
  }

  function alertBox(id, text, isError) {
    var box = document.getElementById("alerts");
    var old = box.querySelector('[data-id="' + id + '"]');
    if (old) old.remove();
    if (!text) return;
    var p = document.createElement("p");
    p.setAttribute("data-id", id);
    if (isError) p.className = "error";
    p.textContent = text;
    box.appendChild(p);
  }

  // ---- Office, as promises ---------------------------------------------------------------

  function officeCall(fn) {
    return new Promise(function (resolve, reject) {
      fn(function (result) {
        if (result.status === Office.AsyncResultStatus.Succeeded) resolve(result.value);
        else reject(result.error || new Error("Office call failed"));
      });
    });
  }

  function item() {
    return Office.context.mailbox.item;
  }

  function addresses(field) {
    if (!field || !field.getAsync) return Promise.resolve([]);
    return officeCall(function (done) { field.getAsync(done); }).then(function (list) {
      return (list || []).map(function (r) { return r.emailAddress; }).filter(Boolean);
    });
  }

  function recipients() {
    var it = item();
    return Promise.all([addresses(it.to), addresses(it.cc), addresses(it.bcc)]).then(function (all) {
      return { to: all[0], cc: all[1], bcc: all[2] };
    });
  }

  // ---- what is unfinished, per draft -----------------------------------------------------

  function draftStore() {
    var it = item();
    if (it.sessionData && Office.context.requirements.isSetSupported("Mailbox", "1.11")) {
      return {
        load: function () {
          return officeCall(function (done) { it.sessionData.getAsync(SESSION_KEY, done); })
            .then(function (text) { return JSON.parse(text || "{}"); })
            .catch(function () { return {}; });
        },
        save: function (value) {
          return officeCall(function (done) {
            it.sessionData.setAsync(SESSION_KEY, JSON.stringify(value), done);
          }).catch(function () {});
        },
      };
    }
    // Without sessionData (Mailbox < 1.11) the pane remembers one draft in this browser.
    var key = "ferry:draft";
    return {
      load: function () {
        try { return Promise.resolve(JSON.parse(window.localStorage.getItem(key) || "{}")); }
        catch (e) { return Promise.resolve({}); }
      },
      save: function (value) {
        try { window.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* full */ }
        return Promise.resolve();
      },
    };
  }

  var store = null;
  var saving = Promise.resolve();

  function saveDraft() {
    var unfinished = entries
      .filter(function (e) { return e.state !== "done" && e.state !== "cancelled"; })
      .map(function (e) {
        return { name: e.file.name, size: e.file.size, sent: e.sent, url: e.url || null };
      });
    var value = { unfinished: unfinished, updated: new Date().toISOString() };
    saving = saving.then(function () { return store.save(value); });
    return saving;
  }

  function showUnfinished(list) {
    var section = document.getElementById("unfinished");
    var ul = document.getElementById("unfinished-list");
    ul.textContent = "";
    var waiting = (list || []).filter(function (u) {
      return !entries.some(function (e) { return e.file.name === u.name && e.file.size === u.size; });
    });
    waiting.forEach(function (u) {
      var li = document.createElement("li");
      li.textContent = u.name + " (" + bytes(u.size) + ", " + percent(u.sent || 0, u.size) + ")";
      ul.appendChild(li);
    });
    section.hidden = waiting.length === 0;
  }

  // ---- signing in ------------------------------------------------------------------------

  function SignInError(code, reason) {
    this.code = code;
    this.reason = reason;
  }

  function apiKey() {
    var key = Office.context.roamingSettings.get("ferryApiKey");
    return typeof key === "string" && key.trim() ? key.trim() : null;
  }

  function bearer() {
    var key = apiKey();
    if (key) return Promise.resolve("Bearer " + key);
    if (!config.entra) return Promise.reject(new SignInError("noSignIn"));
    var request = { scopes: [config.entra.scope_uri] };
    if (window.msal && Office.context.requirements.isSetSupported("NestedAppAuth", "1.1")) {
      var app = nestedApp || (nestedApp = msal.createNestablePublicClientApplication({
        auth: { clientId: config.entra.client_id, authority: "https://login.microsoftonline.com/common" },
      }));
      return app.then(function (client) {
        return client.acquireTokenSilent(request).catch(function () {
          return client.acquireTokenPopup(request);
        });
      }).then(function (result) {
        return "Bearer " + result.accessToken;
      }, function (e) {
        throw new SignInError("signInFailed", e && (e.errorCode || e.message));
      });
    }
    return Office.auth.getAccessToken({ allowSignInPrompt: true, allowConsentPrompt: true })
      .then(function (token) { return "Bearer " + token; }, function (e) {
        throw new SignInError("signInFailed", e && (e.message || e.code));
      });
  }

  function explain(error) {
    if (error instanceof SignInError) return say(error.code, { reason: error.reason || "" });
    if (error && error.code === "entra_tenant_not_linked") return say("notLinked");
    if (error && error.message) return say("serverError", { reason: error.message });
    return say("offline");
  }

  function api(method, path, body) {
    return bearer().then(function (auth) {
      var headers = { Authorization: auth };
      if (body) headers["Content-Type"] = "application/json";
      return fetch(ORIGIN + path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined });
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (!response.ok) {
          var error = new Error(json.message || String(response.status));
          error.code = json.error;
          error.status = response.status;
          throw error;
        }
        return json;
      });
    });
  }

  // ---- uploads ---------------------------------------------------------------------------

  function render(entry) {
    var li = entry.node;
    if (!li) {
      li = entry.node = document.createElement("li");
      li.setAttribute("data-name", entry.file.name);
      var name = document.createElement("div");
      name.className = "name";
      name.textContent = entry.file.name;
      var size = document.createElement("div");
      size.className = "size";
      size.textContent = bytes(entry.file.size);
      var bar = document.createElement("progress");
      bar.max = 1000;
      bar.setAttribute("aria-label", entry.file.name);
      var state = document.createElement("div");
      state.className = "state";
      var row = document.createElement("div");
      row.className = "row";
      var toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "toggle";
      toggle.addEventListener("click", function () { entry.state === "paused" ? resume(entry) : pause(entry); });
      var cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "cancel";
      cancel.addEventListener("click", function () { cancelUpload(entry); });
      row.appendChild(toggle);
      row.appendChild(cancel);
      li.appendChild(name);
      li.appendChild(size);
      li.appendChild(bar);
      li.appendChild(state);
      li.appendChild(row);
      document.getElementById("uploads").appendChild(li);
    }
    var barNode = li.querySelector("progress");
    var stateNode = li.querySelector(".state");
    var toggleNode = li.querySelector(".toggle");
    var cancelNode = li.querySelector(".cancel");
    barNode.value = entry.file.size > 0 ? Math.floor((entry.sent / entry.file.size) * 1000) : (entry.state === "done" ? 1000 : 0);
    stateNode.className = "state " + entry.state;
    li.setAttribute("data-state", entry.state);
    var p = percent(entry.sent, entry.file.size);
    var text;
    if (entry.state === "done") text = say("done");
    else if (entry.state === "failed") text = say("failed", { reason: entry.reason || "" });
    else if (entry.state === "paused") text = say("paused", { percent: p });
    else if (entry.state === "waiting") text = say("waiting");
    else if (entry.speed > 0) {
      text = say("uploading", {
        percent: p,
        speed: bytes(entry.speed),
        left: duration((entry.file.size - entry.sent) / entry.speed),
      });
    } else text = entry.resumedAt ? say("resumed", { percent: percent(entry.resumedAt, entry.file.size) }) : say("uploadingNoEta", { percent: p });
    stateNode.textContent = text;
    toggleNode.textContent = entry.state === "paused" ? say("resume") : say("pause");
    toggleNode.hidden = entry.state === "done" || entry.state === "failed";
    cancelNode.textContent = entry.state === "done" || entry.state === "failed" ? say("remove") : say("cancel");
  }

  function progress(entry, sent) {
    var now = Date.now();
    if (entry.lastAt) {
      var seconds = (now - entry.lastAt) / 1000;
      if (seconds >= 0.5) {
        var rate = (sent - entry.lastSent) / seconds;
        entry.speed = entry.speed ? entry.speed * 0.7 + rate * 0.3 : rate;
        entry.lastAt = now;
        entry.lastSent = sent;
      }
    } else {
      entry.lastAt = now;
      entry.lastSent = sent;
    }
    if (entry.resumed && entry.resumedAt === undefined) {
      entry.resumedAt = sent;
      entry.node.setAttribute("data-resumed-at", String(sent));
    }
    entry.sent = sent;
    if (entry.state === "waiting") entry.state = "uploading";
    render(entry);
    if (now - (entry.savedAt || 0) > 5000) {
      entry.savedAt = now;
      saveDraft();
    }
  }

  function uploadFor(entry) {
    return new tus.Upload(entry.file, {
      endpoint: ORIGIN + "/files",
      chunkSize: partSize,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000, 60000, 60000],
      metadata: { filename: entry.file.name, filetype: entry.file.type || "application/octet-stream" },
      removeFingerprintOnSuccess: true,
      onBeforeRequest: function (request) {
        return bearer().then(function (auth) { request.setHeader("Authorization", auth); });
      },
      onShouldRetry: function (error) {
        var response = error.originalResponse;
        var status = response ? response.getStatus() : 0;
        // Refusals do not get better by retrying; outages and conflicts do.
        return !(status === 400 || status === 401 || status === 403 || status === 404 || status === 410 || status === 413);
      },
      onUploadUrlAvailable: function () {
        entry.url = entry.upload.url;
        saveDraft();
      },
      onProgress: function (sent) { progress(entry, sent); },
      onSuccess: function () {
        entry.state = "done";
        entry.sent = entry.file.size;
        entry.id = entry.upload.url.split("/").pop();
        render(entry);
        saveDraft().then(maybeInsert);
      },
      onError: function (error) {
        entry.state = "failed";
        var response = error.originalResponse;
        var body = response && response.getBody ? response.getBody() : "";
        try { entry.reason = JSON.parse(body).message; } catch (e) { entry.reason = error.message; }
        render(entry);
        saveDraft();
      },
    });
  }

  function start(entry) {
    entry.upload = uploadFor(entry);
    entry.upload.findPreviousUploads().then(function (previous) {
      if (previous.length > 0) {
        entry.upload.resumeFromPreviousUpload(previous[0]);
        entry.resumed = true;
      }
      entry.state = "uploading";
      render(entry);
      entry.upload.start();
    });
  }

  function pause(entry) {
    if (!entry.upload) return;
    entry.upload.abort(false);
    entry.state = "paused";
    entry.speed = 0;
    entry.lastAt = 0;
    render(entry);
    saveDraft();
  }

  function resume(entry) {
    entry.state = "uploading";
    render(entry);
    entry.upload.start();
  }

  function cancelUpload(entry) {
    if (entry.upload && entry.state !== "done") entry.upload.abort(true).catch(function () {});
    entry.state = "cancelled";
    if (entry.node) entry.node.remove();
    entries = entries.filter(function (e) { return e !== entry; });
    saveDraft().then(maybeInsert);
  }

  function addFiles(files) {
    Array.prototype.forEach.call(files, function (file) {
      var entry = { file: file, sent: 0, state: "waiting", speed: 0 };
      entries.push(entry);
      render(entry);
      start(entry);
    });
    insertedOnce = false;
    saveDraft();
    store.load().then(function (draft) { showUnfinished(draft.unfinished); });
  }

  // ---- the link --------------------------------------------------------------------------

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function block(share, html) {
    var total = share.files.reduce(function (sum, f) { return sum + f.size; }, 0);
    var until = new Intl.DateTimeFormat(locale, { dateStyle: "long" }).format(new Date(share.expires_at));
    var summary = count("blockFiles", { n: share.files.length, size: bytes(total) });
    if (!html) {
      var lines = ["", say("blockTitle") + " — " + summary];
      share.files.forEach(function (f) { lines.push("• " + f.name + " (" + bytes(f.size) + ")"); });
      lines.push(say("blockDownload") + ": " + share.url);
      lines.push(say("blockUntil", { date: until }));
      lines.push(say("blockHashes") + ":");
      share.files.forEach(function (f) { lines.push("  " + f.name + ": " + f.blake3); });
      return lines.join("\n") + "\n";
    }
    var items = share.files.map(function (f) {
      return "<li>" + escapeHtml(f.name) + " <span style=\"color:#605e5c\">(" + escapeHtml(bytes(f.size)) + ")</span></li>";
    }).join("");
    var hashes = share.files.map(function (f) {
      return escapeHtml(f.name) + ": <span style=\"word-break:break-all\">" + escapeHtml(f.blake3) + "</span>";
    }).join("<br>");
    return "<div style=\"font-family:Segoe UI,Arial,sans-serif;font-size:14px;border:1px solid #c8c6c4;border-radius:6px;padding:12px;margin:8px 0;max-width:560px\">" +
      "<div style=\"font-weight:600\">" + escapeHtml(say("blockTitle")) + "</div>" +
      "<div style=\"color:#605e5c\">" + escapeHtml(summary) + "</div>" +
      "<ul style=\"margin:8px 0;padding-left:20px\">" + items + "</ul>" +
      "<a href=\"" + escapeHtml(share.url) + "\" style=\"display:inline-block;background:#0f6cbd;color:#ffffff;padding:8px 16px;border-radius:4px;text-decoration:none;font-weight:600\">" + escapeHtml(say("blockDownload")) + "</a>" +
      "<div style=\"margin-top:8px\">" + escapeHtml(say("blockUntil", { date: until })) + "</div>" +
      "<div style=\"margin-top:8px;font-size:11px;color:#605e5c\">" + escapeHtml(say("blockHashes")) + "<br>" + hashes + "</div>" +
      "</div>";
  }

  function bodyType() {
    return officeCall(function (done) { item().body.getTypeAsync(done); }).catch(function () {
      return Office.CoercionType.Html;
    });
  }

  function insertBlock(share) {
    return bodyType().then(function (type) {
      var html = type === Office.CoercionType.Html;
      return officeCall(function (done) {
        item().body.setSelectedDataAsync(block(share, html), { coercionType: html ? Office.CoercionType.Html : Office.CoercionType.Text }, done);
      });
    });
  }

  function showRecipients(found) {
    var people = found.to.length + found.cc.length;
    document.getElementById("recipients").textContent = people > 0 ? count("recipients", { n: people }) : say("noRecipients");
    alertBox("bcc", found.bcc.length > 0 ? say("bccWarning") : "");
    return found;
  }

  function maybeInsert() {
    var busy = entries.some(function (e) { return e.state !== "done"; });
    var ready = entries.filter(function (e) { return e.state === "done" && !e.shared; });
    if (busy || ready.length === 0 || insertedOnce) return Promise.resolve();
    return createAndInsert(ready);
  }

  function createAndInsert(ready) {
    var button = document.getElementById("insert");
    return recipients().then(showRecipients).then(function (found) {
      var people = found.to.concat(found.cc);
      if (people.length === 0) {
        button.hidden = false;
        return null;
      }
      insertedOnce = true;
      button.hidden = true;
      message("inserting");
      var body = {
        files: ready.map(function (e) { return e.id; }),
        recipients: people,
        retention_days: Number(document.getElementById("retention").value) || undefined,
      };
      return api("POST", "/api/v1/shares", body).then(function (share) {
        return insertBlock(share).then(function () {
          ready.forEach(function (e) { e.shared = true; });
          message("inserted");
          return saveDraft();
        });
      });
    }).catch(function (error) {
      insertedOnce = false;
      button.hidden = false;
      message(null);
      alertBox("insert", explain(error), true);
    });
  }

  // ---- start -----------------------------------------------------------------------------

  function loadConfig() {
    return fetch(ORIGIN + "/addin/config.json").then(function (r) { return r.json(); }).then(function (json) {
      config = json;
    }).catch(function () {});
  }

  function loadPartSize() {
    return fetch(ORIGIN + "/files", { method: "OPTIONS", headers: { "Tus-Resumable": "1.0.0" } }).then(function (r) {
      var size = Number(r.headers.get("Ferry-Part-Size"));
      if (size > 0) partSize = size;
    }).catch(function () {});
  }

  function loadRetention() {
    var select = document.getElementById("retention");
    return api("GET", "/api/v1/policy").then(function (policy) {
      alertBox("signin", "");
      select.textContent = "";
      var choices = [1, 7, 14, 30, 60, 90, policy.default_days].filter(function (d, i, all) {
        return d <= policy.max_days && all.indexOf(d) === i;
      }).sort(function (a, b) { return a - b; });
      choices.forEach(function (days) {
        var option = document.createElement("option");
        option.value = String(days);
        option.textContent = days === policy.default_days ? say("defaultDays", { n: days }) : count("days", { n: days });
        option.selected = days === policy.default_days;
        select.appendChild(option);
      });
    }).catch(function (error) {
      alertBox("signin", explain(error), true);
    });
  }

  function wire() {
    var picker = document.getElementById("picker");
    document.getElementById("choose").addEventListener("click", function () { picker.click(); });
    picker.addEventListener("change", function () {
      addFiles(picker.files);
      picker.value = "";
    });
    var drop = document.getElementById("drop");
    drop.addEventListener("dragover", function (event) {
      event.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
    drop.addEventListener("drop", function (event) {
      event.preventDefault();
      drop.classList.remove("over");
      if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
    });
    document.getElementById("insert").addEventListener("click", function () {
      var ready = entries.filter(function (e) { return e.state === "done" && !e.shared; });
      if (ready.length) createAndInsert(ready);
    });
    var keyInput = document.getElementById("api-key");
    document.getElementById("save-key").addEventListener("click", function () {
      Office.context.roamingSettings.set("ferryApiKey", keyInput.value.trim());
      Office.context.roamingSettings.saveAsync(function () {
        keyInput.value = "";
        message("keySaved");
        loadRetention();
      });
    });
    document.getElementById("forget-key").addEventListener("click", function () {
      Office.context.roamingSettings.remove("ferryApiKey");
      Office.context.roamingSettings.saveAsync(function () {
        message("keyForgotten");
        loadRetention();
      });
    });
    var it = item();
    if (it.addHandlerAsync && Office.EventType && Office.EventType.RecipientsChanged) {
      it.addHandlerAsync(Office.EventType.RecipientsChanged, function () {
        recipients().then(showRecipients);
      });
    }
  }

  Office.onReady(function () {
    locale = pickLanguage(Office.context.displayLanguage);
    t = strings[locale];
    applyStrings();
    store = draftStore();
    wire();
    Promise.all([loadConfig(), loadPartSize()]).then(function () {
      return Promise.all([
        loadRetention(),
        recipients().then(showRecipients),
        store.load().then(function (draft) { showUnfinished(draft.unfinished); }),
      ]);
    }).then(function () {
      document.body.setAttribute("data-ready", "true");
    });
  });
})();

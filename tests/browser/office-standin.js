// A stand-in for Office.js in Outlook's compose window, answered in place of
// https://appsforoffice.microsoft.com/lib/1/hosted/office.js by the pane tests (the real one
// needs an Outlook host around the page). It implements only what Ferry's task pane and launch
// event handler call, with Office's shapes: callbacks receive {status, value, error}.
//
// The test sets window.__officeStandIn before the page loads:
//   {displayLanguage, to, cc, bcc: [addresses], bodyType: "html" | "text",
//    roaming: {ferryApiKey?}, mailbox: "1.13" (highest Mailbox set), ssoToken?: string}
// and reads window.__officeInserted (what setSelectedDataAsync received). sessionData is kept
// in the page origin's localStorage under "standin:sessionData", so a reopened pane on the
// same "draft" finds what the previous one wrote.
(function () {
  "use strict";
  var setup = window.__officeStandIn || {};
  var SESSION = "standin:sessionData";
  var ROAMING = "standin:roaming";

  function ok(value) {
    return { status: "succeeded", value: value };
  }
  function later(callback, result) {
    if (typeof callback === "function") setTimeout(function () { callback(result); }, 0);
  }
  function recipients(list) {
    return {
      getAsync: function (options, callback) {
        later(typeof options === "function" ? options : callback, ok((list || []).map(function (address) {
          return { emailAddress: address, displayName: address.split("@")[0] };
        })));
      },
    };
  }
  function readJson(key) {
    try { return JSON.parse(window.localStorage.getItem(key) || "{}"); } catch (e) { return {}; }
  }
  function writeJson(key, value) {
    window.localStorage.setItem(key, JSON.stringify(value));
  }
  var roaming = Object.assign(readJson(ROAMING), setup.roaming || {});
  var highest = Number(setup.mailbox || "1.13");

  window.__officeInserted = [];

  var Office = {
    AsyncResultStatus: { Succeeded: "succeeded", Failed: "failed" },
    CoercionType: { Html: "html", Text: "text" },
    EventType: { RecipientsChanged: "olkRecipientsChanged" },
    context: {
      displayLanguage: setup.displayLanguage || "en-US",
      requirements: {
        isSetSupported: function (name, version) {
          if (name === "Mailbox") return Number(version || "1.1") <= highest;
          return false; // NestedAppAuth: the pane falls back to Office SSO
        },
      },
      roamingSettings: {
        get: function (name) { return roaming[name]; },
        set: function (name, value) { roaming[name] = value; },
        remove: function (name) { delete roaming[name]; },
        saveAsync: function (callback) {
          writeJson(ROAMING, roaming);
          later(callback, ok());
        },
      },
      mailbox: {
        item: {
          itemType: "message",
          to: recipients(setup.to),
          cc: recipients(setup.cc),
          bcc: recipients(setup.bcc),
          body: {
            getTypeAsync: function (callback) { later(callback, ok(setup.bodyType || "html")); },
            setSelectedDataAsync: function (data, options, callback) {
              window.__officeInserted.push({ data: data, coercionType: options && options.coercionType });
              later(callback, ok());
            },
          },
          addHandlerAsync: function (type, handler, callback) { later(callback, ok()); },
          sessionData: highest >= 1.11 ? {
            getAsync: function (name, callback) {
              var all = readJson(SESSION);
              later(callback, name in all ? ok(all[name]) : { status: "failed", error: { code: 9057, message: "not found" } });
            },
            setAsync: function (name, value, callback) {
              var all = readJson(SESSION);
              all[name] = value;
              writeJson(SESSION, all);
              later(callback, ok());
            },
            removeAsync: function (name, callback) {
              var all = readJson(SESSION);
              delete all[name];
              writeJson(SESSION, all);
              later(callback, ok());
            },
          } : undefined,
        },
      },
    },
    auth: {
      getAccessToken: function () {
        return setup.ssoToken ? Promise.resolve(setup.ssoToken) : Promise.reject({ code: 13001, message: "not signed in" });
      },
    },
    actions: { associate: function () {} },
    onReady: function (callback) {
      var info = { host: "Outlook", platform: "OfficeOnline" };
      return new Promise(function (resolve) {
        setTimeout(function () {
          if (typeof callback === "function") callback(info);
          resolve(info);
        }, 0);
      });
    },
  };
  window.Office = Office;
})();

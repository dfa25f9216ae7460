// Ferry's OnMessageSend handler (Smart Alerts, Mailbox 1.12). It only reads what the task
// pane wrote into the draft's sessionData — Outlook gives a handler seconds, not minutes — and
// never uploads. While a file of this draft is unfinished, sending is soft-blocked with a
// message that offers to open the pane; otherwise the message goes.
(function (root) {
  "use strict";

  var MESSAGES = {
    en: "Files you attached with Ferry are still uploading. Open Ferry to finish them, or send without them.",
    nl: "Bestanden die u met Ferry toevoegde worden nog geüpload. Open Ferry om ze af te maken, of verstuur zonder.",
    de: "Mit Ferry angehängte Dateien werden noch hochgeladen. Öffnen Sie Ferry, um sie fertigzustellen, oder senden Sie ohne sie.",
    fr: "Des fichiers ajoutés avec Ferry sont encore en cours d'envoi. Ouvrez Ferry pour les terminer, ou envoyez sans eux.",
  };

  var OPEN_PANE = { en: "Open Ferry", nl: "Ferry openen", de: "Ferry öffnen", fr: "Ouvrir Ferry" };

  function language() {
    var display = (root.Office && Office.context && Office.context.displayLanguage) || "en";
    var code = String(display).toLowerCase().slice(0, 2);
    return MESSAGES[code] ? code : "en";
  }

  function unfinished(text) {
    try {
      var draft = JSON.parse(text || "{}");
      return Array.isArray(draft.unfinished) ? draft.unfinished : [];
    } catch (e) {
      return [];
    }
  }

  function onMessageSendHandler(event) {
    var item = Office.context.mailbox.item;
    if (!item || !item.sessionData) {
      event.completed({ allowEvent: true });
      return;
    }
    item.sessionData.getAsync("ferry", function (result) {
      var pending = result.status === Office.AsyncResultStatus.Succeeded ? unfinished(result.value) : [];
      if (pending.length === 0) {
        event.completed({ allowEvent: true });
        return;
      }
      var names = pending.map(function (f) { return f.name; }).join(", ");
      event.completed({
        allowEvent: false,
        errorMessage: MESSAGES[language()] + " (" + names + ")",
        // Mailbox 1.14: the alert's button opens the task pane of this command.
        commandId: "Ferry.Compose.OpenPane",
        cancelLabel: OPEN_PANE[language()],
      });
    });
  }

  root.onMessageSendHandler = onMessageSendHandler;
  root.FerryLaunchMessages = { messages: MESSAGES, openPane: OPEN_PANE };
  if (root.Office && Office.actions && Office.actions.associate) {
    Office.actions.associate("onMessageSendHandler", onMessageSendHandler);
  }
})(typeof globalThis !== "undefined" ? globalThis : this);

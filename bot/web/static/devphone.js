// The dev phone: poll the thread every 1.5 s, post answers through the signed webhook.
(function () {
  "use strict";
  const phone = document.getElementById("phone");
  const flow = document.getElementById("flow");
  const thread = document.getElementById("thread");
  const compose = document.getElementById("compose");
  const body = document.getElementById("body");
  const state = document.getElementById("state");
  const contact = document.getElementById("contact");
  const error = document.getElementById("error");
  const windowNote = document.getElementById("window");
  let shown = "";
  // The page's words, in its language: the server renders them as data-said-* attributes of the form.
  function said(name) {
    return compose.dataset["said" + name.charAt(0).toUpperCase() + name.slice(1)] || name;
  }
  // Answers the ledger does not keep (a one-time link to the voter's page), shown until the number changes.
  let transient = [];
  // The server's word on the texts a shut window held back from the last answer, until the number changes.
  let held = "";

  function query() {
    return "?phone=" + encodeURIComponent(phone.value.trim()) + "&flow=" + encodeURIComponent(flow.value);
  }

  function render(data) {
    const key = JSON.stringify([data, transient, held]);
    if (key === shown) return;
    shown = key;
    contact.textContent = data.phone + " ↔ " + data.sender;
    state.textContent = data.state_name || data.state;
    state.className = "badge state-" + data.state;
    thread.replaceChildren();
    if (!data.messages.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = said("empty").replace("{sender}", data.sender);
      thread.append(empty);
    }
    for (const message of data.messages) {
      const item = document.createElement("li");
      item.className = "bubble " + message.from;
      const text = document.createElement("p");
      text.textContent = message.body;  // text only: a voter's words never become markup
      const meta = document.createElement("small");
      meta.textContent = message.time + " · " + message.how;
      item.append(text, meta);
      thread.append(item);
    }
    for (const reply of transient) thread.append(linkBubble(reply));
    windowNote.textContent = [data.window, held].filter(Boolean).join(" ");
    thread.scrollTop = thread.scrollHeight;
  }

  // A bubble for an answer carrying a link to this site's voter page: the link made clickable,
  // everything else as text.
  function linkBubble(reply) {
    const item = document.createElement("li");
    item.className = "bubble bot transient";
    const text = document.createElement("p");
    for (const part of reply.split(/(\s+)/)) {
      const url = ownVoterPage(part);
      if (url) {
        const link = document.createElement("a");
        link.href = url;
        link.target = "_blank";
        link.rel = "noopener";
        link.textContent = part;
        text.append(link);
      } else {
        text.append(part);
      }
    }
    const meta = document.createElement("small");
    meta.textContent = said("transient");
    item.append(text, meta);
    return item;
  }

  function ownVoterPage(word) {
    try {
      const url = new URL(word);
      return /^https?:$/.test(url.protocol) && url.pathname.startsWith("/v/") ? url.href : "";
    } catch (failure) {
      return "";
    }
  }

  async function refresh() {
    if (!phone.value.trim()) return;
    try {
      const answer = await fetch(compose.dataset.thread + query(), {headers: {Accept: "application/json"}});
      const data = await answer.json();
      if (!answer.ok) { error.textContent = data.error || answer.statusText; return; }
      error.textContent = "";
      render(data);
    } catch (failure) {
      error.textContent = said("unreachable");
    }
  }

  compose.addEventListener("submit", async function (event) {
    event.preventDefault();
    const text = body.value;
    if (!text.trim() || !phone.value.trim()) return;
    const form = new URLSearchParams({phone: phone.value.trim(), flow: flow.value, body: text});
    const answer = await fetch(compose.action, {
      method: "POST", body: form,
      headers: {"X-CSRF-Token": compose.dataset.csrf, Accept: "application/json"},
    });
    const data = await answer.json().catch(() => ({}));
    if (!answer.ok) {
      error.textContent = data.error || said("webhook").replace("{status}", data.status || answer.status);
      return;
    }
    body.value = "";
    transient = (data.replies || []).filter((reply) => reply.split(/\s+/).some(ownVoterPage));
    held = data.held || "";
    refresh();
  });

  function changed() {
    shown = "";
    transient = [];
    held = "";
    history.replaceState(null, "", query());
    refresh();
  }
  phone.addEventListener("change", changed);
  flow.addEventListener("change", changed);
  for (const link of document.querySelectorAll("[data-number]")) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      phone.value = link.dataset.number;
      changed();
    });
  }
  refresh();
  setInterval(refresh, 1500);
})();

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
  let shown = "";

  function query() {
    return "?phone=" + encodeURIComponent(phone.value.trim()) + "&flow=" + encodeURIComponent(flow.value);
  }

  function render(data) {
    const key = JSON.stringify(data);
    if (key === shown) return;
    shown = key;
    contact.textContent = data.phone + " ↔ " + data.sender;
    state.textContent = data.state;
    state.className = "badge state-" + data.state;
    thread.replaceChildren();
    if (!data.messages.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "Nothing between this number and " + data.sender + " yet.";
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
    thread.scrollTop = thread.scrollHeight;
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
      error.textContent = "The bot does not answer: is `make run` still running?";
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
      error.textContent = data.error || ("the webhook answered " + (data.status || answer.status));
      return;
    }
    body.value = "";
    refresh();
  });

  function changed() {
    shown = "";
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

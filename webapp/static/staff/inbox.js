// Staff inbox: the queue and the open conversation refresh by polling; every change is a POST
// to /staff/api/handovers/... with the session's X-CSRF-Token. Text only ever as text nodes.
"use strict";

(function () {
  const LIST_EVERY_MS = 1500;
  const CONVERSATION_EVERY_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const root = $("inbox");
  if (!root) return;
  const CHANNELS = { widget: "Khung chat", zalo: "Zalo", facebook: "Messenger" };
  const WHO = { citizen: "Người dân", bot: "Trợ lý ảo", staff: "Cán bộ" };
  const DELIVERY = {
    pending: "Đang chờ gửi…",
    sending: "Đang gửi…",
    failed: "Không gửi được",
    window_closed: "Không gửi được: hết thời hạn trả lời của nền tảng",
  };
  let csrf = null;
  let me = null;
  // /staff/inbox?sender=... (the unanswered page's links) opens that conversation.
  let selected = new URLSearchParams(window.location.search).get("sender") || null;
  let lastDetail = null;

  function node(tag, className, value) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (value !== undefined) element.textContent = value;
    return element;
  }

  function waited(seconds) {
    if (seconds < 60) return `${seconds} giây`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} phút`;
    return `${Math.floor(seconds / 3600)} giờ ${Math.floor((seconds % 3600) / 60)} phút`;
  }

  function showError(message) {
    $("inbox-error").textContent = message || "";
  }

  async function api(path, options = {}) {
    const response = await fetch(path, { credentials: "same-origin", ...options });
    if (response.status === 401) {
      window.location.href = `/staff/login?next=${encodeURIComponent("/staff/inbox")}`;
      throw new Error("Cần đăng nhập lại.");
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      throw new Error((body && body.error && body.error.message) || `Lỗi HTTP ${response.status}`);
    }
    return body;
  }

  function post(action, body) {
    const path = `/staff/api/handovers/${encodeURIComponent(selected)}/${action}`;
    return api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
  }

  function renderList(handovers) {
    const list = $("handover-list");
    list.replaceChildren();
    $("queue-empty").hidden = handovers.length > 0;
    for (const item of handovers) {
      const button = node("button", item.status);
      button.type = "button";
      button.dataset.sender = item.sender;
      if (item.sender === selected) button.setAttribute("aria-current", "true");
      const state = item.status === "waiting" ? "Đang chờ" : `Đang xử lý: ${item.claimed_by}`;
      button.append(
        node("span", "", `${CHANNELS[item.channel] || item.channel} · ${state}`),
        node("span", "small", `Chờ ${waited(item.waiting_seconds)}`),
        node("span", "preview", item.last_message || ""),
        node("code", "small", item.sender.slice(0, 18))
      );
      button.addEventListener("click", () => open(item.sender));
      const entry = node("li");
      entry.append(button);
      list.append(entry);
    }
  }

  function renderDetail(detail) {
    lastDetail = detail;
    $("conversation").hidden = false;
    const channel = CHANNELS[detail.channel] || detail.channel;
    const states = {
      waiting: "Đang chờ cán bộ nhận",
      claimed: `Do ${detail.claimed_by} xử lý`,
      returned: "Đã chuyển lại cho trợ lý ảo",
      closed: "Đã đóng",
      none: "Trợ lý ảo đang trả lời (chưa chuyển cho cán bộ)",
    };
    let stateText = `${channel} · ${states[detail.status] || detail.status}`;
    if (detail.reply_window_open === false) {
      stateText += ` · Đã hết thời hạn trả lời qua ${channel}: tin nhắn sẽ không gửi được.`;
    }
    $("conversation-state").textContent = stateText;
    const callback = detail.callback;
    $("callback").textContent =
      callback && callback.phone_masked
        ? `Gọi lại: ${callback.phone || callback.phone_masked}`
        : callback && callback.state === "offered"
          ? "Ngoài giờ: đã đề nghị gọi lại, người dân chưa để lại số."
          : "";
    const list = $("conversation-messages");
    list.replaceChildren();
    for (const message of detail.messages) {
      const item = node("li", message.from);
      const who = message.from === "staff" && message.staff ? `Cán bộ ${message.staff}` : WHO[message.from];
      item.append(node("span", "who", who || message.from), node("span", "text", message.text));
      if (DELIVERY[message.delivery]) {
        item.append(node("span", "delivery", message.delivery_note || DELIVERY[message.delivery]));
      }
      list.append(item);
    }
    list.scrollTop = list.scrollHeight;
    const mine = detail.status === "claimed" && detail.claimed_by === me;
    $("claim").hidden = mine || detail.status === "claimed";
    $("release").hidden = !mine;
    $("close").hidden = !mine;
    $("reply-form").hidden = !mine;
  }

  async function refreshList() {
    try {
      const body = await api("/staff/api/handovers");
      renderList(body.handovers);
    } catch (error) {
      showError(error.message);
    }
  }

  async function refreshDetail() {
    if (!selected) return;
    try {
      renderDetail(await api(`/staff/api/handovers/${encodeURIComponent(selected)}`));
    } catch (error) {
      showError(error.message);
    }
  }

  function open(sender) {
    selected = sender;
    showError("");
    refreshList();
    refreshDetail();
  }

  async function act(action, body) {
    showError("");
    try {
      await post(action, body);
      await refreshDetail();
      await refreshList();
      return true;
    } catch (error) {
      showError(error.message);
      return false;
    }
  }

  $("claim").addEventListener("click", () => act("claim"));
  $("release").addEventListener("click", () => act("release"));
  $("close").addEventListener("click", () => act("close"));
  $("reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = $("reply-text");
    const text = box.value.trim();
    if (!text) return;
    if (await act("messages", { text })) box.value = "";
    box.focus();
  });

  async function start() {
    const session = await api("/staff/api/session");
    csrf = session.csrf_token;
    me = session.username;
    await refreshList();
    await refreshDetail();
    setInterval(refreshList, LIST_EVERY_MS);
    setInterval(() => lastDetail !== null && refreshDetail(), CONVERSATION_EVERY_MS);
  }
  start().catch((error) => showError(error.message));
})();

/*
 * Chat widget of the administrative-procedures assistant (trợ lý thủ tục hành chính).
 * Embed with ONE tag, no build step:
 *   <script src="https://SERVER/static/widget/widget.js" data-server="https://SERVER"
 *           data-title="Trợ lý thủ tục hành chính" data-greeting="Xin chào! ..."></script>
 * It talks to SERVER/api/chat only (and polls SERVER/api/chat/updates for messages from hotline
 * staff once the conversation has its token). The UI lives in a shadow root so the host page's CSS
 * cannot break it (nor it the page). Untrusted text is only ever inserted as text nodes.
 */
(() => {
  "use strict";

  // currentScript is null for type="module"; then find the tag by its file name.
  const script =
    document.currentScript || document.querySelector('script[src*="/static/widget/widget.js"]');
  if (!script || window.__tthcChatWidget) return;
  window.__tthcChatWidget = true;

  const scriptUrl = new URL(script.src, document.baseURI);
  const config = {
    server: (script.dataset.server || scriptUrl.origin).replace(/\/+$/, ""),
    title: script.dataset.title || "Trợ lý thủ tục hành chính",
    greeting:
      script.dataset.greeting ||
      "Xin chào! Tôi có thể giúp bạn tra cứu thủ tục hành chính. Bạn cần hỏi về thủ tục nào?",
  };
  const STORAGE_KEY = `tthc-chat:${config.server}`;
  const MAX_STORED_MESSAGES = 100;
  const MAX_MESSAGE_CHARS = 2000;
  const COUNTER_FROM_CHARS = 1800; // the counter appears near the limit
  // Shown as buttons under the greeting of an empty chat (a host page may set its own, "|"-separated).
  const SUGGESTIONS = (script.dataset.suggestions ||
    "Đổi giấy phép lái xe cần giấy tờ gì?|Đăng ký khai sinh nộp ở đâu?|" +
      "Làm căn cước mất bao lâu?|Đăng ký kết hôn có làm online được không?")
    .split("|")
    .map((text) => text.trim())
    .filter(Boolean)
    .slice(0, 4);
  const REQUEST_TIMEOUT_MS = 40000;
  const MAX_BACKOFF_MS = 15000;
  // On a shared computer (a one-stop-shop kiosk) the next citizen must not find the last chat.
  const IDLE_FORGET_MS = 24 * 60 * 60 * 1000;
  // Staff replies arrive by polling: often while staff hold the conversation, rarely otherwise
  // (a conversation staff pick up from their list starts with a notice).
  const POLL_HELD_MS = 1000;
  const POLL_IDLE_MS = 10000;

  // ---- state, kept in localStorage so the conversation survives a reload ----------------------

  const newSender = () => {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  };

  const freshState = () => ({
    sender: newSender(),
    seq: 0,
    token: null, // the conversation's secret, from the first answer of /api/chat
    updateId: 0, // the last staff message shown
    open: false,
    messages: [],
    savedAt: Date.now(),
  });

  const loadState = () => {
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEY));
      const usable =
        saved &&
        typeof saved.sender === "string" &&
        Array.isArray(saved.messages) &&
        Number.isInteger(saved.seq) &&
        Date.now() - saved.savedAt < IDLE_FORGET_MS;
      if (usable) {
        saved.messages = saved.messages.filter((m) => m && typeof m.id === "number");
        return saved;
      }
    } catch (_error) {
      // Storage disabled or corrupt: start a new conversation in memory.
    }
    return freshState();
  };

  let state = loadState();

  const saveState = () => {
    state.messages = state.messages.slice(-MAX_STORED_MESSAGES);
    state.savedAt = Date.now();
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(state));
    } catch (_error) {
      // Quota or privacy mode: the conversation still works, it just won't survive a reload.
    }
  };

  // ---- DOM helpers ------------------------------------------------------------------------------

  const el = (tag, attrs = {}, children = []) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  };

  // http(s) URLs, www. addresses and bare Vietnamese domains (dichvucong.gov.vn); not e-mails.
  const LINK_PATTERN =
    /(?<![@\w.\/-])(?:https?:\/\/[^\s<>"']+|www\.[^\s<>"']+|(?:[a-z0-9-]+\.)+(?:gov\.vn|edu\.vn|com\.vn|org\.vn|vn)(?:\/[^\s<>"']*)?)/gi;
  const TRAILING_PUNCTUATION = /[.,;:!?)\]}'"…]+$/;

  const safeHref = (raw) => {
    try {
      const url = new URL(/^https?:\/\//i.test(raw) ? raw : `https://${raw}`);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_error) {
      return null;
    }
  };

  // Text becomes text nodes and <a> elements: no HTML from the bot is ever parsed.
  const linkify = (text) => {
    const fragment = document.createDocumentFragment();
    let last = 0;
    for (const match of text.matchAll(LINK_PATTERN)) {
      const raw = match[0].replace(TRAILING_PUNCTUATION, "");
      const href = raw && safeHref(raw);
      if (!href) continue;
      fragment.append(text.slice(last, match.index));
      fragment.append(el("a", { href, target: "_blank", rel: "noopener noreferrer", text: raw }));
      last = match.index + raw.length;
    }
    fragment.append(text.slice(last));
    return fragment;
  };

  // ---- UI -----------------------------------------------------------------------------------------

  // A custom tag and an inline reset: the host page's selectors and inherited styles stay out.
  const host = el("tthc-chat-widget", { style: "all: initial; visibility: hidden" });
  const root = host.attachShadow({ mode: "open" });
  const stylesheet = el("link", { rel: "stylesheet", href: new URL("widget.css", scriptUrl).href });
  const showHost = () => host.style.removeProperty("visibility");
  stylesheet.addEventListener("load", showHost);
  stylesheet.addEventListener("error", showHost);

  // An SVG, not an emoji: many systems (kiosks, old phones) have no emoji font.
  const chatIcon = () => {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "launcher-icon");
    svg.setAttribute("aria-hidden", "true");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z");
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  };

  const titleId = "tthc-chat-title";
  const launcher = el("button", {
    type: "button",
    class: "launcher",
    "aria-label": `Mở ${config.title}`,
    "aria-expanded": "false",
    "aria-controls": "tthc-chat-panel",
  }, [chatIcon(), el("span", { class: "launcher-text", text: "Hỏi đáp thủ tục" })]);

  const log = el("div", {
    class: "log",
    role: "log",
    "aria-live": "polite",
    "aria-relevant": "additions",
    "aria-label": "Nội dung cuộc trò chuyện",
    tabindex: "0",
  });
  const typing = el("div", { class: "typing", role: "status", hidden: "" }, [
    el("span", { class: "sr-only typing-text" }),
    el("span", { class: "dot", "aria-hidden": "true" }),
    el("span", { class: "dot", "aria-hidden": "true" }),
    el("span", { class: "dot", "aria-hidden": "true" }),
  ]);
  const connectionText = el("span", { class: "connection-text" });
  const retryNow = el("button", { type: "button", class: "retry-now", text: "Thử lại ngay" });
  const connection = el("div", { class: "connection", role: "status", hidden: "" }, [
    connectionText,
    retryNow,
  ]);
  const input = el("textarea", {
    id: "tthc-chat-input",
    class: "input",
    rows: "1",
    "aria-describedby": "tthc-chat-counter",
    placeholder: "Nhập câu hỏi của bạn…",
    "aria-label": "Nhập câu hỏi của bạn",
    enterkeyhint: "send",
  });
  const sendButton = el("button", { type: "submit", class: "send", "aria-label": "Gửi câu hỏi" }, [
    el("span", { "aria-hidden": "true", text: "➤" }),
  ]);
  const counter = el("p", { id: "tthc-chat-counter", class: "counter", "aria-live": "polite", hidden: "" });
  const form = el("form", { class: "composer" }, [input, sendButton]);
  const closeButton = el("button", {
    type: "button",
    class: "icon-button close",
    "aria-label": "Đóng cửa sổ trò chuyện",
  }, [el("span", { "aria-hidden": "true", text: "✕" })]);
  const restartButton = el("button", {
    type: "button",
    class: "icon-button restart",
    "aria-label": "Bắt đầu cuộc trò chuyện mới",
    title: "Bắt đầu cuộc trò chuyện mới",
  }, [el("span", { "aria-hidden": "true", text: "↺" })]);
  const panel = el("section", {
    id: "tthc-chat-panel",
    class: "panel",
    role: "dialog",
    "aria-labelledby": titleId,
    hidden: "",
  }, [
    el("header", { class: "header" }, [
      el("h2", { id: titleId, class: "title", text: config.title }),
      restartButton,
      closeButton,
    ]),
    el("div", { class: "scroller" }, [log, typing]),
    connection,
    counter,
    form,
    el("p", { class: "footnote", text: "Enter để gửi · Shift+Enter xuống dòng · Esc để đóng" }),
  ]);
  root.append(stylesheet, el("div", { class: "widget" }, [launcher, panel]));

  const scrollToEnd = () => {
    const scroller = log.parentElement;
    scroller.scrollTop = scroller.scrollHeight;
  };

  // A bot answer taller than the view is shown from its top (where the asked fact is), not its
  // end; so is a reply of several bubbles (the answer, then close alternatives) that together
  // are taller than the view.
  const scrollToMessage = (bubble) => {
    const scroller = log.parentElement;
    const top = bubble.offsetTop - log.offsetTop;
    if (log.scrollHeight - top > scroller.clientHeight) scroller.scrollTop = top;
    else scrollToEnd();
  };
  const scrollToLatest = () => {
    if (log.lastElementChild) scrollToMessage(log.lastElementChild);
  };

  const messageNodes = new Map();

  const statusLabel = (message) =>
    message.status === "pending" ? "Đang chờ gửi…" : message.status === "failed" ? "Chưa gửi được" : "";

  const renderButtons = (message) => {
    const group = el("div", { class: "quick-replies", role: "group", "aria-label": "Các lựa chọn" });
    for (const button of message.buttons) {
      // Buttons stay usable (a payload names its choice fully) and keep focus, so a phone's
      // keyboard does not pop up over the answer.
      const node = el("button", { type: "button", class: "quick-reply", text: button.title });
      node.addEventListener("click", () => send(button.title, button.payload));
      group.append(node);
    }
    return group;
  };

  const renderMessage = (message) => {
    const who = { user: "Bạn", bot: "Trợ lý", notice: "Thông báo", staff: "Cán bộ" }[message.from];
    const bubble = el("div", { class: `message ${message.from}` }, [
      message.from === "staff"
        ? el("span", { class: "author", text: `${who}: ` })
        : el("span", { class: "sr-only", text: `${who}: ` }),
    ]);
    if (typeof message.text === "string") bubble.append(el("div", { class: "text" }, [linkify(message.text)]));
    if (message.image) bubble.append(el("img", { src: message.image, alt: "Hình ảnh từ trợ lý" }));
    if (message.buttons && message.buttons.length) bubble.append(renderButtons(message));
    const status = el("div", { class: "message-status", text: statusLabel(message) });
    bubble.append(status);
    messageNodes.set(message.id, status);
    log.append(bubble);
    scrollToMessage(bubble);
  };

  const refreshStatus = (message) => {
    const node = messageNodes.get(message.id);
    if (node) node.textContent = statusLabel(message);
  };

  const addMessage = (fields) => {
    const message = { id: ++state.seq, ...fields };
    state.messages.push(message);
    saveState();
    renderMessage(message);
    return message;
  };

  const showTyping = (on) => {
    typing.hidden = !on;
    typing.querySelector(".typing-text").textContent = on ? "Trợ lý đang trả lời…" : "";
    if (on) scrollToEnd();
  };

  const showConnection = (text) => {
    connection.hidden = !text;
    connectionText.textContent = text || "";
  };

  const setOpen = (open, { focus = true } = {}) => {
    state.open = open;
    saveState();
    panel.hidden = !open;
    launcher.hidden = open;
    launcher.setAttribute("aria-expanded", String(open));
    if (open) scrollToLatest(); // after a reload too: the latest message in view
    if (!focus) return;
    if (open) {
      input.focus();
    } else {
      launcher.focus();
    }
  };

  // ---- transport: one queue, retried with backoff until the server answers ------------------------

  class ClientError extends Error {}

  const postChat = async (sender, text) => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(`${config.server}/api/chat`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(
          state.token ? { sender, message: text, token: state.token } : { sender, message: text }
        ),
        signal: controller.signal,
      });
      const body = await response.json().catch(() => null);
      // 4xx means this message will never be accepted; anything else is worth retrying.
      if (response.status >= 400 && response.status < 500 && ![408, 429].includes(response.status)) {
        throw new ClientError((body && body.message) || `Máy chủ từ chối tin nhắn (HTTP ${response.status}).`);
      }
      if (!response.ok || !body || !Array.isArray(body.messages)) {
        throw new Error(`HTTP ${response.status}`);
      }
      if (typeof body.token === "string" && sender === state.sender) {
        state.token = body.token;
        saveState();
        wakePoll();
      }
      return body.messages;
    } finally {
      clearTimeout(timer);
    }
  };

  let wakeUp = null;
  const sleep = (ms) =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const retryImmediately = () => wakeUp && wakeUp();
  retryNow.addEventListener("click", () => {
    retryImmediately();
    input.focus();
  });
  window.addEventListener("online", retryImmediately);

  // Delivers one message; gives up silently if the conversation was restarted meanwhile.
  const deliver = async (message) => {
    const sender = state.sender;
    for (let attempt = 1; sender === state.sender; attempt += 1) {
      showTyping(true);
      try {
        const replies = await postChat(sender, message.payload || message.text);
        if (sender !== state.sender) return;
        showConnection("");
        message.status = undefined;
        refreshStatus(message);
        showTyping(false);
        const first = log.children.length;
        for (const reply of replies) {
          addMessage({ from: "bot", text: reply.text, buttons: reply.buttons, image: reply.image });
        }
        if (log.children[first]) scrollToMessage(log.children[first]);
        saveState();
        wakePoll(); // a held conversation's automatic answers come through the updates
        return;
      } catch (error) {
        if (sender !== state.sender) return;
        showTyping(false);
        if (error instanceof ClientError) {
          message.status = "failed";
          refreshStatus(message);
          addMessage({ from: "notice", text: error.message });
          return;
        }
        if (attempt === 1) {
          // For the operator: a refused cross-origin call looks exactly like a network error.
          console.warn(
            `Trợ lý: không gọi được ${config.server}/api/chat (${error.message}). ` +
              "Nếu trang này ở tên miền khác, hãy thêm nó vào CHAT_ALLOWED_ORIGINS của máy chủ."
          );
        }
        const delay = Math.min(1000 * 2 ** (attempt - 1), MAX_BACKOFF_MS);
        showConnection(
          `Mất kết nối tới máy chủ — đang kết nối lại… (lần ${attempt}, thử lại sau ${Math.ceil(delay / 1000)} giây). Tin nhắn của bạn vẫn được giữ.`
        );
        await sleep(delay * (0.8 + Math.random() * 0.4));
      }
    }
  };

  let pumping = false;
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      let next;
      while ((next = state.messages.find((m) => m.from === "user" && m.status === "pending"))) {
        await deliver(next);
      }
    } finally {
      pumping = false;
    }
  };

  // ---- messages nobody asked for: hotline staff's replies --------------------------------------

  let pollTimer = null;
  let pollWake = null;
  const pollSleep = (ms) =>
    new Promise((resolve) => {
      pollTimer = setTimeout(resolve, ms);
      pollWake = () => {
        clearTimeout(pollTimer);
        resolve();
      };
    });
  const wakePoll = () => pollWake && pollWake();

  const fetchUpdates = async () => {
    const sender = state.sender;
    const query = new URLSearchParams({ sender, token: state.token, after: String(state.updateId) });
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(`${config.server}/api/chat/updates?${query}`, {
        signal: controller.signal,
      });
      const body = await response.json().catch(() => null);
      if (!response.ok || !body || !Array.isArray(body.messages) || sender !== state.sender) {
        return false;
      }
      for (const update of body.messages) {
        if (typeof update.id !== "number" || update.id <= state.updateId) continue;
        state.updateId = update.id;
        addMessage({ from: update.from === "staff" ? "staff" : "bot", text: String(update.text) });
      }
      // Nothing saved for an empty poll: an open tab polling is not activity, and saving would
      // keep a conversation idle for a day from being forgotten (addMessage saves the rest).
      return Boolean(body.held);
    } finally {
      clearTimeout(timer);
    }
  };

  const pollForever = async () => {
    for (;;) {
      let held = false;
      if (state.token) {
        try {
          held = await fetchUpdates();
        } catch (_error) {
          // Offline for a moment: the next round asks again from the same message id.
        }
      }
      await pollSleep(held ? POLL_HELD_MS : POLL_IDLE_MS);
    }
  };

  const send = (text, payload) => {
    const message = addMessage({ from: "user", text, payload, status: "pending" });
    refreshStatus(message);
    pump();
  };

  // ---- events ---------------------------------------------------------------------------------------

  const autoGrow = () => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 120)}px`;
  };

  // Near the limit a counter, over it a refusal: a message is never cut silently.
  const updateCounter = () => {
    const length = input.value.length;
    counter.hidden = length < COUNTER_FROM_CHARS;
    counter.textContent =
      length > MAX_MESSAGE_CHARS
        ? `${length}/${MAX_MESSAGE_CHARS} ký tự — vui lòng rút gọn ${length - MAX_MESSAGE_CHARS} ký tự để gửi.`
        : `${length}/${MAX_MESSAGE_CHARS} ký tự`;
    counter.classList.toggle("over", length > MAX_MESSAGE_CHARS);
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || text.length > MAX_MESSAGE_CHARS) return;
    input.value = "";
    autoGrow();
    updateCounter();
    send(text);
    input.focus();
  });
  input.addEventListener("input", autoGrow);
  input.addEventListener("input", updateCounter);
  input.addEventListener("keydown", (event) => {
    // isComposing: Vietnamese input methods use composition; Enter then confirms a word.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing) {
      event.preventDefault();
      setOpen(false);
    }
  });
  launcher.addEventListener("click", () => setOpen(true));
  closeButton.addEventListener("click", () => setOpen(false));
  restartButton.addEventListener("click", () => {
    state = { ...freshState(), open: true };
    messageNodes.clear();
    log.replaceChildren();
    showConnection("");
    showTyping(false);
    retryImmediately();
    greet();
    input.focus();
  });

  function greet() {
    const buttons = SUGGESTIONS.map((text) => ({ title: text, payload: text }));
    addMessage({ from: "bot", text: config.greeting, buttons });
  }

  // ---- start ----------------------------------------------------------------------------------------

  if (!state.messages.length) greet();
  else state.messages.forEach(renderMessage);
  const mount = () => {
    document.body.append(host);
    setOpen(Boolean(state.open), { focus: false });
    pump();
    pollForever();
  };
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();

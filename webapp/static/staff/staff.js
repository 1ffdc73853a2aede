// Hotline staff pages: search as you type, keyboard navigation, copy the summary, print.
"use strict";

(function () {
  const DEBOUNCE_MS = 150;
  const $ = (id) => document.getElementById(id);

  function text(tag, className, value) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.textContent = value;
    return node;
  }

  // ---- search page ----------------------------------------------------------------------
  function setupSearch() {
    const box = $("q");
    const results = $("results");
    const status = $("status");
    if (!box || !results) return;
    const filters = ["field", "level", "online"].map($);
    let active = -1;
    let timer = null;
    let pending = null;
    let sequence = 0;

    function items() {
      return Array.from(results.querySelectorAll("[role=option]"));
    }

    function setActive(index) {
      const all = items();
      if (!all.length) return;
      active = Math.max(0, Math.min(index, all.length - 1));
      all.forEach((item, i) => item.setAttribute("aria-selected", String(i === active)));
      box.setAttribute("aria-activedescendant", all[active].id);
      all[active].scrollIntoView({ block: "nearest" });
    }

    function open(index) {
      const all = items();
      const item = all[index >= 0 ? index : 0];
      if (item) window.location.href = item.dataset.href;
    }

    function methodLine(method) {
      return method.method_label + ": " + method.time + " · " + method.fee;
    }

    function render(data) {
      results.replaceChildren();
      active = -1;
      box.removeAttribute("aria-activedescendant");
      data.results.forEach((hit, i) => {
        const item = document.createElement("li");
        item.id = "result-" + i;
        item.setAttribute("role", "option");
        item.setAttribute("aria-selected", "false");
        item.dataset.href = "/staff/procedures/" + encodeURIComponent(hit.code);
        const link = text("a", "name", hit.name);
        link.href = item.dataset.href;
        link.tabIndex = -1;
        item.append(link);
        const meta = [hit.code, hit.level_labels.join(", "), hit.online_label];
        item.append(text("div", "meta", meta.filter(Boolean).join(" · ")));
        const methods = document.createElement("ul");
        methods.className = "methods";
        (hit.methods.length ? hit.methods.map(methodLine) : ["Thời gian, phí: chưa có thông tin"])
          .forEach((line) => methods.append(text("li", "", line)));
        item.append(methods);
        item.addEventListener("click", () => open(i));
        results.append(item);
      });
      status.textContent = data.count
        ? data.count + " kết quả"
        : (data.query || hasFilter() ? "Không tìm thấy thủ tục phù hợp." : "");
    }

    function hasFilter() {
      return filters.some((select) => select && select.value);
    }

    function params() {
      const query = new URLSearchParams();
      const q = box.value.trim();
      if (q) query.set("q", q);
      filters.forEach((select) => select && select.value && query.set(select.id, select.value));
      return query;
    }

    async function run() {
      const query = params();
      history.replaceState(null, "", query.toString() ? "?" + query : window.location.pathname);
      if (!query.toString()) {
        results.replaceChildren();
        status.textContent = "";
        return;
      }
      query.set("limit", "20");
      if (pending) pending.abort();
      pending = new AbortController();
      const mine = ++sequence;
      status.textContent = "Đang tìm…";
      try {
        const response = await fetch("/staff/api/procedures?" + query, {
          signal: pending.signal,
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.status === 401) {
          window.location.href = "/staff/login?next=" + encodeURIComponent(location.pathname);
          return;
        }
        const data = await response.json();
        if (mine !== sequence) return;
        if (!response.ok) {
          status.textContent = data.error ? data.error.message : "Lỗi tìm kiếm.";
          return;
        }
        render(data);
      } catch (error) {
        if (error.name !== "AbortError") status.textContent = "Không kết nối được máy chủ.";
      }
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(run, DEBOUNCE_MS);
    }

    box.addEventListener("input", schedule);
    filters.forEach((select) => select && select.addEventListener("change", run));
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      open(active);
    });
    box.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown") {
        event.preventDefault();
        setActive(active + 1);
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        setActive(active - 1);
      } else if (event.key === "Enter") {
        event.preventDefault();
        clearTimeout(timer);
        open(active);
      } else if (event.key === "Escape") {
        box.value = "";
        run();
      }
    });
    if (box.value.trim() || hasFilter()) run();
  }

  // ---- procedure page -------------------------------------------------------------------
  async function copyText(value) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(value);
        return true;
      } catch (error) {
        // fall through to the selection-based copy below
      }
    }
    const area = document.createElement("textarea");
    area.value = value;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied;
  }

  function setupProcedure() {
    const button = $("copy-summary");
    if (button) {
      button.addEventListener("click", async () => {
        const value = $(button.dataset.copy).textContent;
        const copied = await copyText(value);
        $("copy-status").textContent = copied
          ? "Đã sao chép tóm tắt."
          : "Không sao chép được, hãy bôi đen đoạn tóm tắt.";
      });
    }
    const printButton = $("print-page");
    if (printButton) printButton.addEventListener("click", () => window.print());
  }

  // "/" (outside other text fields) goes to the search box and selects its text for retyping.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const box = $("q");
    const tag = (event.target.tagName || "").toLowerCase();
    const typing = tag === "input" || tag === "textarea" || tag === "select";
    if (typing && event.target !== box) return;
    event.preventDefault();
    if (box) {
      box.focus();
      box.select();
    } else {
      window.location.href = "/staff";
    }
  });

  setupSearch();
  setupProcedure();
})();

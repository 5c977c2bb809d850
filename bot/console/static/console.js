/* billbot agent console: plain JavaScript, no build step, no outside resources.
 *
 * Everything the page shows comes from the JSON API under /api; the WebSocket at /api/ws only
 * says "something changed", and the page then refetches what it shows. Every POST/DELETE
 * carries the CSRF token handed out by /api/login and /api/me. Data is put on the page with
 * textContent only, never as HTML.
 */
(function () {
  "use strict";

  var REASONS = {
    asked: ["客户要求人工", "Asked for a person"],
    verify_failed: ["核对失败 {n} 次", "Verification failed {n} times"],
    not_understood: ["未能理解", "Not understood"],
    order_not_found: ["未找到订单", "Order not found"],
    order_not_synced: ["订单迟迟未同步", "Order never synced"],
    no_contact: ["无可分配客服", "No contact to assign"],
    no_way_to_add: ["客服无法扫码添加", "Contact cannot be added by QR"],
    cannot_verify: ["无法自助核对", "Cannot verify by themselves"],
  };
  var STATUSES = {
    waiting: ["等待中", "Waiting"],
    claimed: ["处理中", "In progress"],
    waiting_customer: ["等待客户回复", "Waiting for customer"],
    resolved: ["已结束", "Resolved"],
    returned: ["已交还机器人", "Handed back"],
    cancelled: ["已取消", "Cancelled"],
    expired: ["已过期", "Expired"],
  };
  var PING_EVERY_MS = 25000;
  var POLL_EVERY_MS = 15000; // while the WebSocket is down
  // While it is up, a slow backstop: with several server processes, a console is pushed
  // only the events of the process it is connected to.
  var BACKSTOP_EVERY_MS = 60000;
  var FIGURES_EVERY_MS = 60000;
  var MIN_PASSWORD = 10; // as the server's login directory requires

  var state = {
    agent: null,
    csrf: "",
    oldPassword: "", // the one-time password just typed, so a first sign-in asks for it once
    queue: [],
    mine: [],
    openId: null,
    view: null,
    unmaskReason: null,
    closingId: null,
    seenIds: null, // queue ids already announced; null until the first load
    sending: false,
    shown: { id: null, masked: true, keys: [] }, // what the transcript shows now
    agents: [],
    canned: [],
    ws: null,
    wsTries: 0,
    wsTimer: null,
    pingTimer: null,
    pollTimer: null,
    pollMs: 0,
    figuresTimer: null,
    refreshTimer: null,
    seq: { queue: 0, mine: 0, view: 0 },
  };

  // ---------------------------------------------------------------- small helpers

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") node.textContent = value;
        else if (key === "className") node.className = value;
        else if (key.slice(0, 5) === "data-" || key.slice(0, 5) === "aria-" || key === "role" ||
                 key === "lang" || key === "type" || key === "title" || key === "datetime") {
          node.setAttribute(key, value === true ? "" : String(value));
        } else node[key] = value;
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  /** "中文 English": the Chinese words, then the English ones marked as English. */
  function bilingual(zh, en) {
    var frag = document.createDocumentFragment();
    frag.appendChild(document.createTextNode(zh + " "));
    frag.appendChild(el("span", { lang: "en", className: "en", text: en }));
    return frag;
  }

  function setBilingual(node, zh, en) {
    node.textContent = "";
    node.appendChild(bilingual(zh, en));
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function pad2(n) {
    return (n < 10 ? "0" : "") + n;
  }

  /** Seconds as mm:ss (minutes keep counting past 59). */
  function mmss(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    return pad2(Math.floor(s / 60)) + ":" + pad2(s % 60);
  }

  function figure(seconds) {
    return seconds === null || seconds === undefined ? "–" : mmss(seconds);
  }

  function clockTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    var today = new Date();
    var hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
    if (d.toDateString() === today.toDateString()) return hm;
    return (d.getMonth() + 1) + "/" + d.getDate() + " " + hm;
  }

  function reasonWords(item) {
    var words = REASONS[item.reason];
    if (!words) return [item.reason, item.reason];
    var n = String(item.failures || 0);
    return [words[0].replace("{n}", n), words[1].replace("{n}", n)];
  }

  function statusWords(status) {
    return STATUSES[status] || [status, status];
  }

  /** Who wrote a transcript line: [css class, Chinese label, English label]. */
  function senderOf(sender) {
    var s = String(sender || "");
    if (s === "customer") return ["customer", "客户", "Customer"];
    if (s === "bot") return ["bot", "机器人", "Bot"];
    if (s.indexOf("agent:") === 0) {
      var a = s.slice(6);
      return ["agent", "客服 " + a, "Agent " + a];
    }
    if (s.indexOf("note:") === 0) {
      var n = s.slice(5);
      return ["note", "备注 · " + n, "Note · " + n];
    }
    if (s === "system") return ["system", "系统", "System"];
    return ["system", s, s];
  }

  // ---------------------------------------------------------------- messages to the agent

  var toastTimer = null;

  function toast(zh, en, kind) {
    var box = $("toast");
    setBilingual(box, zh, en);
    box.className = "toast " + (kind || "info");
    show(box, true);
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () {
      show(box, false);
    }, kind === "error" ? 8000 : 4000);
  }

  function errorWords(err) {
    if (err && err.zh) return [err.zh, err.en || ""];
    return ["操作失败，请稍后再试。", "That did not work; please try again."];
  }

  function showError(err) {
    var w = errorWords(err);
    toast(w[0], w[1], "error");
  }

  function formError(node, err) {
    if (!err) {
      show(node, false);
      node.textContent = "";
      return;
    }
    var w = errorWords(err);
    setBilingual(node, w[0], w[1]);
    show(node, true);
  }

  // ---------------------------------------------------------------- the API

  function ApiError(status, zh, en) {
    this.status = status;
    this.zh = zh;
    this.en = en;
  }

  function request(method, path, body, retried) {
    var headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = state.csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(
      function (resp) {
        return resp.text().then(function (raw) {
          var data = null;
          try {
            data = raw ? JSON.parse(raw) : null;
          } catch (e) {
            data = null;
          }
          if (resp.ok) return data || {};
          var err = data && data.error;
          var apiErr = new ApiError(
            resp.status,
            err && err.zh ? err.zh : "服务暂时不可用，请稍后再试。",
            err && err.en ? err.en : "The server could not do that; please try again."
          );
          if (resp.status === 401 && state.agent && path !== "/api/login") {
            signedOut("登录已过期，请重新登录。", "Your session ended; please sign in again.");
          }
          // A refused CSRF token: fetch the current one and try once more.
          if (resp.status === 403 && method !== "GET" && !retried) {
            var before = state.csrf;
            return refreshToken().then(function () {
              if (state.csrf && state.csrf !== before) return request(method, path, body, true);
              throw apiErr;
            });
          }
          throw apiErr;
        });
      },
      function () {
        throw new ApiError(0, "网络连接中断，请检查网络后重试。", "Network problem; check the connection and retry.");
      }
    );
  }

  function refreshToken() {
    return fetch("/api/me", { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) {
        return resp.ok ? resp.json() : null;
      })
      .then(function (data) {
        if (data && data.csrf_token) state.csrf = data.csrf_token;
      })
      .catch(function () {});
  }

  var api = {
    get: function (path) {
      return request("GET", path);
    },
    post: function (path, body) {
      return request("POST", path, body === undefined ? {} : body);
    },
    del: function (path) {
      return request("DELETE", path);
    },
  };

  /** Disables a button while its action runs, so a double click does one thing. */
  function busy(button, promise) {
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
    }
    return promise.then(
      function (value) {
        if (button) {
          button.disabled = false;
          button.removeAttribute("aria-busy");
        }
        return value;
      },
      function (err) {
        if (button) {
          button.disabled = false;
          button.removeAttribute("aria-busy");
        }
        throw err;
      }
    );
  }

  // ---------------------------------------------------------------- screens

  function screen(name) {
    ["loading", "login", "password", "main"].forEach(function (n) {
      show($("screen-" + n), n === name);
    });
  }

  function boot() {
    api.get("/api/me").then(
      function (data) {
        signedIn(data);
      },
      function () {
        screen("login");
        $("login-name").focus();
      }
    );
  }

  function signedIn(data) {
    state.agent = data.agent;
    state.csrf = data.csrf_token || state.csrf;
    if (state.agent.must_change_password) {
      askNewPassword(true);
      return;
    }
    startMain();
  }

  function signedOut(zh, en) {
    stopMain();
    state.agent = null;
    state.csrf = "";
    state.oldPassword = "";
    screen("login");
    formError($("login-error"), zh ? { zh: zh, en: en } : null);
    $("login-password").value = "";
    $("login-name").focus();
  }

  function onLogin(event) {
    event.preventDefault();
    var name = $("login-name").value.trim();
    var password = $("login-password").value;
    var errorBox = $("login-error");
    if (!name || !password) {
      formError(errorBox, { zh: "请输入账号和密码。", en: "Enter your name and password." });
      return;
    }
    formError(errorBox, null);
    var button = event.submitter || $("login-form").querySelector("button[type=submit]");
    busy(button, api.post("/api/login", { name: name, password: password })).then(
      function (data) {
        state.oldPassword = password;
        $("login-password").value = "";
        signedIn(data);
      },
      function (err) {
        formError(errorBox, err);
        $("login-password").select();
      }
    );
  }

  function askNewPassword(required) {
    var form = $("password-form");
    form.reset();
    $("password-user").value = state.agent ? state.agent.name : "";
    form.setAttribute("data-required", required ? "true" : "false");
    show($("password-old-row"), !state.oldPassword);
    formError($("password-error"), null);
    var cancel = $("password-cancel");
    if (required) setBilingual(cancel, "退出登录", "Sign out");
    else setBilingual(cancel, "取消", "Cancel");
    screen("password");
    (state.oldPassword ? $("password-new") : $("password-old")).focus();
  }

  function onPassword(event) {
    event.preventDefault();
    var oldPassword = state.oldPassword || $("password-old").value;
    var fresh = $("password-new").value;
    var again = $("password-confirm").value;
    var errorBox = $("password-error");
    if (!oldPassword) {
      formError(errorBox, { zh: "请输入当前密码。", en: "Enter your current password." });
      return;
    }
    if (fresh.length < MIN_PASSWORD) {
      formError(errorBox, {
        zh: "新密码至少 " + MIN_PASSWORD + " 个字符。",
        en: "The new password needs at least " + MIN_PASSWORD + " characters.",
      });
      return;
    }
    if (fresh !== again) {
      formError(errorBox, { zh: "两次输入的新密码不一致。", en: "The two new passwords differ." });
      return;
    }
    if (fresh === oldPassword) {
      formError(errorBox, { zh: "新密码不能与当前密码相同。", en: "Choose a password different from the current one." });
      return;
    }
    formError(errorBox, null);
    var button = event.submitter || $("password-form").querySelector("button[type=submit]");
    busy(button, api.post("/api/password", { old_password: oldPassword, new_password: fresh })).then(
      function (data) {
        state.oldPassword = "";
        if (data && data.csrf_token) state.csrf = data.csrf_token;
        if ($("password-form").getAttribute("data-required") !== "true") {
          toast("密码已更新。", "Password changed.", "ok");
          screen("main");
          return refreshToken();
        }
        // The server may start a new session on a password change: ask who we are now.
        return api.get("/api/me").then(
          function (me) {
            toast("密码已更新。", "Password changed.", "ok");
            if (me.agent) me.agent.must_change_password = false;
            signedIn(me);
          },
          function () {
            signedOut("密码已更新，请用新密码登录。", "Password changed; sign in with the new one.");
          }
        );
      },
      function (err) {
        if (err.status === 401 || err.status === 403) {
          // The remembered one-time password was refused: let the agent type it.
          state.oldPassword = "";
          show($("password-old-row"), true);
        }
        formError(errorBox, err);
      }
    );
  }

  function onPasswordCancel() {
    if ($("password-form").getAttribute("data-required") === "true") logout();
    else screen("main");
  }

  function logout() {
    var done = function () {
      signedOut();
    };
    api.post("/api/logout").then(done, done);
  }

  // ---------------------------------------------------------------- the main screen

  function startMain() {
    screen("main");
    var a = state.agent;
    $("agent-name").textContent = a.role === "admin" ? a.name + " · 管理员 Admin" : a.name;
    show($("canned-admin"), a.role === "admin");
    show($("funnel-link"), a.role === "admin");
    if (a.role === "admin") setBilingual($("mine-label"), "进行中的会话", "In progress (everyone's)");
    else setBilingual($("mine-label"), "我的会话", "Mine");
    refreshAll();
    loadAgents();
    loadCanned();
    connect();
    clearInterval(state.figuresTimer);
    state.figuresTimer = setInterval(loadFigures, FIGURES_EVERY_MS);
  }

  function stopMain() {
    clearInterval(state.figuresTimer);
    stopPolling();
    clearInterval(state.pingTimer);
    clearTimeout(state.wsTimer);
    clearTimeout(state.refreshTimer);
    state.wsTries = 0;
    if (state.ws) {
      var ws = state.ws;
      state.ws = null;
      ws.onclose = null;
      ws.close();
    }
    state.queue = [];
    state.mine = [];
    state.seenIds = null;
    closeConversation();
  }

  function refreshAll() {
    loadQueue();
    loadMine();
    loadFigures();
    if (state.openId !== null) loadView();
  }

  /** Many events close together cause one refetch. */
  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refreshAll, 120);
  }

  function loadQueue() {
    var n = ++state.seq.queue;
    return api.get("/api/queue").then(function (data) {
      if (n !== state.seq.queue || !state.agent) return;
      state.queue = data.items || [];
      state.queueAt = performance.now();
      renderQueue();
    }, quietly);
  }

  function loadMine() {
    var n = ++state.seq.mine;
    return api.get("/api/mine").then(function (data) {
      if (n !== state.seq.mine || !state.agent) return;
      state.mine = data.items || [];
      state.mineAt = performance.now();
      renderMine();
    }, quietly);
  }

  function loadFigures() {
    return api.get("/api/report/today").then(function (f) {
      $("fig-waiting").textContent = f.waiting === undefined ? "–" : String(f.waiting);
      $("fig-handled").textContent = f.handled_today === undefined ? "–" : String(f.handled_today);
      $("fig-wait").textContent = figure(f.avg_wait_seconds);
      $("fig-first").textContent = figure(f.avg_first_response_seconds);
      $("fig-resolve").textContent = figure(f.avg_resolution_seconds);
    }, quietly);
  }

  function loadAgents() {
    return api.get("/api/agents").then(function (data) {
      state.agents = data.agents || [];
      var select = $("transfer-agent");
      var keep = select.value;
      while (select.options.length > 1) select.remove(1);
      state.agents.forEach(function (a) {
        if (state.agent && a.id === state.agent.id) return;
        var role = a.role === "admin" ? " (管理员 Admin)" : "";
        select.appendChild(el("option", { value: String(a.id), text: a.name + role }));
      });
      select.value = keep;
    }, quietly);
  }

  function loadCanned() {
    return api.get("/api/canned").then(function (data) {
      state.canned = data.items || [];
      var select = $("canned-select");
      while (select.options.length > 1) select.remove(1);
      state.canned.forEach(function (c) {
        select.appendChild(el("option", { value: String(c.id), text: c.title }));
      });
      renderCannedAdmin();
    }, quietly);
  }

  function quietly(err) {
    // Background refreshes stay silent unless the network itself is gone.
    if (err && err.status === 0) setLive("offline");
  }

  // ---------------------------------------------------------------- queue and mine

  function waitCell(item, fetchedAt) {
    // Only a conversation still in the queue keeps waiting; once claimed, its wait is final.
    var ticking = item.status === "waiting";
    return el("span", {
      className: "wait",
      "data-wait": ticking ? String(item.waiting_seconds || 0) : null,
      "data-at": ticking ? String(fetchedAt) : null,
      "aria-label": "等待时间 Waiting time",
      text: mmss(item.waiting_seconds || 0),
    });
  }

  function tickWaits() {
    var now = performance.now();
    var nodes = document.querySelectorAll(".wait[data-wait]");
    for (var i = 0; i < nodes.length; i++) {
      var base = Number(nodes[i].getAttribute("data-wait"));
      var at = Number(nodes[i].getAttribute("data-at"));
      nodes[i].textContent = mmss(base + (now - at) / 1000);
    }
    if (state.view) renderWindow();
  }

  function itemSummary(item, fetchedAt) {
    var reason = reasonWords(item);
    var prio = Number(item.priority || 0);
    var badges = el("div", { className: "badges" }, [
      el("span", { className: "ref", text: item.ref }),
      el("span", {
        className: "badge prio" + (prio > 0 ? " high" : ""),
        title: "优先级 Priority",
        text: "优先 P" + prio,
      }),
      el("span", { className: "reason" }, [bilingual(reason[0], reason[1])]),
      waitCell(item, fetchedAt),
    ]);
    var facts = el("div", { className: "facts" }, [
      el("span", { text: "订单 Order " + (item.order || "—") }),
      el("span", {
        className: item.amount_confirmed ? "amount-yes" : "amount-no",
        text: item.amount_confirmed ? "金额已核对 ✓ Amount confirmed" : "金额未核对 ✗ Amount not confirmed",
      }),
      el("span", { className: "muted", text: item.customer + (item.channel ? " · " + item.channel : "") }),
    ]);
    var extra = [];
    if (item.dropped_by) {
      extra.push(
        el("p", {
          className: "dropped",
          text: "由 " + item.dropped_by + " 超时退回 · Dropped by " + item.dropped_by,
        })
      );
    }
    var lines = item.last_messages || [];
    if (lines.length) {
      extra.push(
        el(
          "ul",
          { className: "last", "aria-label": "最近消息 Last messages" },
          lines.map(function (m) {
            var who = senderOf(m.sender);
            return el("li", { className: "line-" + who[0] }, [
              el("span", { className: "who", text: who[0] === "customer" ? "客户" : who[1] }),
              el("span", { className: "said", text: m.text }),
            ]);
          })
        )
      );
    }
    return [badges, facts].concat(extra);
  }

  function focusKey() {
    var a = document.activeElement;
    return a && a.getAttribute ? a.getAttribute("data-key") : null;
  }

  function restoreFocus(key) {
    if (!key) return;
    var node = document.querySelector('[data-key="' + key.replace(/["\\]/g, "") + '"]');
    if (node) node.focus();
  }

  function renderQueue() {
    var key = focusKey();
    var list = $("queue");
    list.textContent = "";
    var at = state.queueAt;
    state.queue.forEach(function (item) {
      var claim = el("button", {
        type: "button",
        className: "primary small",
        "data-testid": "claim-button",
        "data-key": "claim-" + item.id,
        "aria-label": "认领 " + item.ref + " Claim",
      }, [bilingual("认领", "Claim")]);
      claim.addEventListener("click", function () {
        claimOne(item, claim);
      });
      var li = el(
        "li",
        { className: "item", "data-testid": "queue-item", "data-ref": item.ref, "data-id": String(item.id) },
        itemSummary(item, at).concat([el("div", { className: "row end" }, [claim])])
      );
      list.appendChild(li);
    });
    announceArrivals();
    $("queue-count").textContent = String(state.queue.length);
    show($("queue-empty"), state.queue.length === 0);
    $("claim-next").disabled = state.queue.length === 0;
    document.title = (state.queue.length ? "(" + state.queue.length + ") " : "") + "客服工作台 · Agent console";
    restoreFocus(key);
  }

  /** Screen readers hear about conversations that joined the queue since the last look. */
  function announceArrivals() {
    var seen = state.seenIds;
    var fresh = state.queue.filter(function (item) {
      return seen && !seen[item.id];
    });
    state.seenIds = {};
    state.queue.forEach(function (item) {
      state.seenIds[item.id] = true;
    });
    if (fresh.length) {
      setBilingual(
        $("queue-announce"),
        "新的排队会话：" + fresh.map(function (i) { return i.ref; }).join("、"),
        "New in the queue: " + fresh.map(function (i) { return i.ref; }).join(", ")
      );
    }
  }

  function renderMine() {
    var key = focusKey();
    var list = $("mine");
    list.textContent = "";
    var at = state.mineAt;
    state.mine.forEach(function (item) {
      var status = statusWords(item.status);
      var open = el("button", {
        type: "button",
        className: "small",
        "data-testid": "open-button",
        "data-key": "open-" + item.id,
        "aria-label": "打开 " + item.ref + " Open",
      }, [bilingual("打开", "Open")]);
      open.addEventListener("click", function () {
        openConversation(item.id);
      });
      var li = el(
        "li",
        {
          className: "item" + (item.id === state.openId ? " current" : ""),
          "data-testid": "mine-item",
          "data-ref": item.ref,
          "data-id": String(item.id),
          "aria-current": item.id === state.openId ? "true" : null,
        },
        itemSummary(item, at).concat([
          el("div", { className: "row end" }, [
            el("span", { className: "status status-" + item.status }, [bilingual(status[0], status[1])]),
            open,
          ]),
        ])
      );
      list.appendChild(li);
    });
    $("mine-count").textContent = String(state.mine.length);
    show($("mine-empty"), state.mine.length === 0);
    restoreFocus(key);
  }

  function claimOne(item, button) {
    busy(button, api.post("/api/handoffs/" + item.id + "/claim")).then(
      function (data) {
        toast("已认领 " + item.ref, "Claimed " + item.ref, "ok");
        refreshAll();
        openConversation((data.item || item).id);
      },
      function (err) {
        showError(err); // 409: someone else was faster; the words say so
        loadQueue();
        loadMine();
      }
    );
  }

  function claimNext() {
    var button = $("claim-next");
    busy(button, api.post("/api/handoffs/claim-next")).then(
      function (data) {
        if (!data.item) {
          toast("队列为空。", "No one is waiting.", "info");
        } else {
          toast("已认领 " + data.item.ref, "Claimed " + data.item.ref, "ok");
          openConversation(data.item.id);
        }
        refreshAll();
      },
      function (err) {
        showError(err);
        refreshAll();
      }
    );
  }

  // ---------------------------------------------------------------- the open conversation

  function openConversation(id) {
    if (state.openId !== id) {
      state.unmaskReason = null;
      state.view = null;
      $("reply-text").value = "";
      $("transcript").textContent = "";
      state.shown = { id: null, masked: true, keys: [] };
    }
    state.openId = id;
    show($("conv-placeholder"), false);
    show($("conv-body"), true);
    renderMine();
    return loadView().then(function () {
      if (window.matchMedia && window.matchMedia("(max-width: 899px)").matches) {
        $("conversation").scrollIntoView({ behavior: "smooth", block: "start" });
      }
      $("reply-text").focus();
    });
  }

  function closeConversation() {
    state.openId = null;
    state.shown = { id: null, masked: true, keys: [] };
    state.view = null;
    state.unmaskReason = null;
    show($("conv-body"), false);
    show($("conv-placeholder"), true);
    if (state.agent) renderMine();
  }

  function viewPath(id) {
    var path = "/api/handoffs/" + id;
    if (state.unmaskReason) path += "?unmask_reason=" + encodeURIComponent(state.unmaskReason);
    return path;
  }

  function loadView() {
    var id = state.openId;
    if (id === null) return Promise.resolve();
    var n = ++state.seq.view;
    return api.get(viewPath(id)).then(
      function (view) {
        if (n !== state.seq.view || state.openId !== id) return;
        setView(view);
      },
      function (err) {
        if (state.openId !== id || state.closingId === id) return;
        if (err.status === 403 || err.status === 404) {
          // Transferred, resolved by someone else, or gone: it is no longer ours to show.
          showError(err);
          closeConversation();
        } else if (err.status !== 0 && err.status !== 401) {
          showError(err);
        }
      }
    );
  }

  function setView(view) {
    state.view = view;
    state.viewAt = performance.now();
    renderView();
  }

  function ownedByMe(item) {
    return !!state.agent && item.claimed_by === state.agent.name;
  }

  function renderView() {
    var view = state.view;
    if (!view) return;
    var box = $("transcript");
    // Follow the conversation if the agent was reading its end (or just opened it).
    var stick = state.shown.id !== state.openId ||
      box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    var item = view.item;
    var status = statusWords(item.status);
    var reason = reasonWords(item);
    $("conv-title").textContent = item.ref + " · " + status[0] + " " + status[1];
    $("conv-meta").textContent =
      "客户 Customer " + item.customer +
      " · 订单 Order " + (item.order || "—") +
      " · " + reason[0] + " " + reason[1] +
      (item.claimed_by ? " · 处理人 Owner " + item.claimed_by : "");
    var admin = !!state.agent && state.agent.role === "admin";
    show($("unmask"), admin && view.masked);
    show($("remask"), admin && !view.masked);
    var banner = $("conv-masked");
    if (view.masked) setBilingual(banner, "个人信息已遮盖", "Personal data masked");
    else setBilingual(banner, "正在显示原文（已记录审计）", "Showing unmasked data (audited)");
    banner.className = "banner" + (view.masked ? "" : " warn");
    var open = item.status === "claimed" || item.status === "waiting_customer";
    // An admin may note, transfer, hand back or resolve anyone's conversation; only the
    // agent holding it replies.
    var mayAct = open && (ownedByMe(item) || admin);
    ["note", "transfer", "handback", "resolve", "transfer-agent"].forEach(function (id) {
      $(id).disabled = !mayAct;
    });
    ["canned-select", "reply-text"].forEach(function (id) {
      $(id).disabled = !mayAct;
    });
    renderWindow();
    renderTranscript(view.transcript || [], view.masked);
    if (stick) box.scrollTop = box.scrollHeight;
  }

  /** Why WeChat would refuse a reply right now, or null if it would accept one. */
  function replyBlocked() {
    var view = state.view;
    if (!view) return null;
    var status = view.item.status;
    if (status !== "claimed" && status !== "waiting_customer") {
      var s = statusWords(status);
      return ["会话" + s[0] + "，不能回复。", "This conversation is " + s[1].toLowerCase() + "; it cannot be answered."];
    }
    if (!ownedByMe(view.item)) {
      var owner = view.item.claimed_by || "—";
      return [
        "这个会话由 " + owner + " 处理，只有处理人可以回复。",
        "This conversation is held by " + owner + "; only they can reply.",
      ];
    }
    var until = view.window_open_until ? new Date(view.window_open_until).getTime() : null;
    if (until === null || until <= Date.now()) {
      return [
        "客户 48 小时内没有发消息，微信不允许再回复；请等待客户再次发消息。",
        "The customer has not written in 48 hours, so WeChat refuses replies; wait until they write again.",
      ];
    }
    if ((view.replies_left || 0) <= 0) {
      return [
        "本条客户消息后的 5 条回复已用完；请等待客户回复。",
        "All 5 replies allowed after the customer's last message are used; wait for them to write.",
      ];
    }
    return null;
  }

  function renderWindow() {
    var view = state.view;
    if (!view) return;
    var box = $("window-status");
    var until = view.window_open_until ? new Date(view.window_open_until).getTime() : null;
    var left = until === null ? 0 : Math.max(0, until - Date.now());
    var text;
    if (until === null || left <= 0) {
      text = ["微信回复窗口已关闭 / 剩余可回复 0 条", "Reply window closed · 0 replies left"];
    } else {
      var hours = Math.floor(left / 3600000);
      var span = hours >= 1 ? [hours + "h", hours + "h"] : [Math.max(1, Math.floor(left / 60000)) + " 分钟", Math.max(1, Math.floor(left / 60000)) + " min"];
      var n = view.replies_left || 0;
      text = [
        "微信回复窗口剩余 " + span[0] + " / 剩余可回复 " + n + " 条",
        "Reply window " + span[1] + " left · " + n + " replies left",
      ];
    }
    if (box.getAttribute("data-text") !== text[0]) {
      box.setAttribute("data-text", text[0]);
      setBilingual(box, text[0], text[1]);
    }
    var blocked = replyBlocked();
    var shut = left <= 0 || (view.replies_left || 0) <= 0;
    box.className = "window" + (shut ? " closed" : left < 3600000 ? " soon" : "");
    var why = $("reply-blocked");
    if (blocked) {
      if (why.getAttribute("data-text") !== blocked[0]) {
        why.setAttribute("data-text", blocked[0]);
        setBilingual(why, blocked[0], blocked[1]);
      }
      show(why, true);
    } else {
      why.removeAttribute("data-text");
      show(why, false);
    }
    $("reply-send").disabled = !!blocked;
  }

  function lineKey(line) {
    return line.at + "\u0000" + line.sender + "\u0000" + line.text;
  }

  function lineNode(line) {
    var who = senderOf(line.sender);
    return el("li", { className: "msg msg-" + who[0], "data-sender": who[0] }, [
      el("div", { className: "msg-head" }, [
        el("span", { className: "who" }, [bilingual(who[1], who[2])]),
        el("time", { datetime: line.at, text: clockTime(line.at) }),
      ]),
      el("p", { className: "msg-text", text: line.text }),
    ]);
  }

  /** New lines are appended (so screen readers hear only them); anything else redraws. */
  function renderTranscript(lines, masked) {
    var box = $("transcript");
    var keys = lines.map(lineKey);
    var shown = state.shown;
    var extends_ = shown.id === state.openId && shown.masked === masked &&
      shown.keys.length > 0 && shown.keys.length <= keys.length &&
      shown.keys.every(function (k, i) {
        return k === keys[i];
      });
    if (!extends_) {
      box.textContent = "";
      if (!lines.length) {
        box.appendChild(el("li", { className: "empty" }, [bilingual("暂无消息", "No messages yet")]));
      }
    }
    var from = extends_ ? shown.keys.length : 0;
    for (var i = from; i < lines.length; i++) box.appendChild(lineNode(lines[i]));
    state.shown = { id: state.openId, masked: masked, keys: keys };
  }

  function replyText() {
    return $("reply-text").value.trim();
  }

  function onReply(event) {
    if (event) event.preventDefault();
    var text = replyText();
    var id = state.openId;
    if (id === null) return;
    if (!text) {
      toast("请先输入回复内容。", "Type a reply first.", "error");
      $("reply-text").focus();
      return;
    }
    var blocked = replyBlocked();
    if (blocked) {
      toast(blocked[0], blocked[1], "error");
      return;
    }
    if (state.sending) return; // Ctrl+Enter pressed again while the reply is on its way
    state.sending = true;
    busy($("reply-send"), api.post("/api/handoffs/" + id + "/reply", { text: text })).then(
      function (view) {
        state.sending = false;
        if (state.openId === id && $("reply-text").value.trim() === text) $("reply-text").value = "";
        if (state.openId !== id) return;
        if (state.unmaskReason || !(view && view.item)) loadView();
        else setView(view);
        loadMine();
        loadFigures();
      },
      function (err) {
        state.sending = false;
        showError(err); // 409/422: WeChat's refusal in plain words; the text stays in the box
        loadView();
        loadMine();
      }
    ).then(renderWindow, renderWindow);
  }

  function simpleAction(button, path, body, zh, en, closes) {
    var id = state.openId;
    if (id === null) return Promise.resolve();
    // While a transfer, hand-back or resolve is on its way, a live refresh may already find
    // the conversation no longer ours: that is expected, not an error to show.
    if (closes) state.closingId = id;
    return busy(button, api.post("/api/handoffs/" + id + path, body)).then(
      function () {
        state.closingId = null;
        toast(zh, en, "ok");
        if (closes && state.openId === id) closeConversation();
        refreshAll();
      },
      function (err) {
        state.closingId = null;
        showError(err);
        refreshAll();
      }
    );
  }

  function onNote() {
    var text = replyText();
    if (!text) {
      toast("请先在输入框写下备注。", "Write the note in the text box first.", "error");
      $("reply-text").focus();
      return;
    }
    simpleAction($("note"), "/note", { text: text }, "备注已保存（客户看不到）。", "Note saved (the customer does not see it).").then(function () {
      if ($("reply-text").value.trim() === text) $("reply-text").value = "";
    });
  }

  function onTransfer() {
    var select = $("transfer-agent");
    if (!select.value) {
      toast("请选择要转交的客服。", "Choose the agent to transfer to.", "error");
      select.focus();
      return;
    }
    var name = select.options[select.selectedIndex].text;
    simpleAction($("transfer"), "/transfer", { agent_id: Number(select.value) }, "已转交给 " + name, "Transferred to " + name, true).then(function () {
      select.value = "";
    });
  }

  function onHandback() {
    simpleAction($("handback"), "/handback", {}, "已交还机器人，客户将从原来的步骤继续。", "Handed back; the bot continues where it stopped.", true);
  }

  function onResolve() {
    simpleAction($("resolve"), "/resolve", {}, "会话已结束。", "Conversation resolved.", true);
  }

  function onUnmask() {
    var reason = window.prompt("显示原文的原因（将记录在审计日志中）\nReason for unmasking (written to the audit log):", "");
    if (reason === null) return;
    reason = reason.trim();
    if (!reason) {
      toast("需要填写原因才能显示原文。", "A reason is needed to unmask.", "error");
      return;
    }
    state.unmaskReason = reason;
    busy($("unmask"), loadView());
  }

  function onRemask() {
    state.unmaskReason = null;
    loadView();
  }

  function onCanned() {
    var select = $("canned-select");
    var chosen = state.canned.filter(function (c) {
      return String(c.id) === select.value;
    })[0];
    if (chosen) {
      var box = $("reply-text");
      box.value = box.value.trim() ? box.value.replace(/\s+$/, "") + "\n" + chosen.text : chosen.text;
      box.focus();
    }
    select.value = "";
  }

  function renderCannedAdmin() {
    if (!state.agent || state.agent.role !== "admin") return;
    var list = $("canned-list");
    list.textContent = "";
    state.canned.forEach(function (c) {
      var remove = el("button", { type: "button", className: "small quiet", "aria-label": "删除 " + c.title + " Delete" }, [bilingual("删除", "Delete")]);
      remove.addEventListener("click", function () {
        busy(remove, api.del("/api/canned/" + c.id)).then(loadCanned, showError);
      });
      list.appendChild(el("li", null, [el("strong", { text: c.title }), el("span", { className: "muted", text: c.text }), remove]));
    });
  }

  function onCannedAdd(event) {
    event.preventDefault();
    var title = $("canned-title").value.trim();
    var text = $("canned-text").value.trim();
    if (!title || !text) {
      toast("标题和内容都要填写。", "Fill in both title and text.", "error");
      return;
    }
    var button = $("canned-form").querySelector("button[type=submit]");
    busy(button, api.post("/api/canned", { title: title, text: text })).then(function () {
      $("canned-form").reset();
      loadCanned();
    }, showError);
  }

  // ---------------------------------------------------------------- live updates

  function setLive(mode) {
    var node = $("live");
    node.setAttribute("data-state", mode);
    if (mode === "live") setBilingual(node, "实时", "Live");
    else if (mode === "offline") setBilingual(node, "连接中断，重连中", "Reconnecting");
    else setBilingual(node, "连接中", "Connecting");
  }

  function connect() {
    if (!state.agent) return;
    clearTimeout(state.wsTimer);
    if (state.ws) {
      var previous = state.ws;
      state.ws = null;
      previous.onclose = null;
      previous.close();
    }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws;
    try {
      ws = new WebSocket(scheme + location.host + "/api/ws");
    } catch (e) {
      reconnectLater();
      return;
    }
    state.ws = ws;
    setLive(state.wsTries ? "offline" : "connecting");
    ws.onopen = function () {
      var again = state.wsTries > 0;
      state.wsTries = 0;
      setLive("live");
      pollEvery(BACKSTOP_EVERY_MS);
      clearInterval(state.pingTimer);
      state.pingTimer = setInterval(function () {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
      }, PING_EVERY_MS);
      if (again) refreshAll(); // catch up on what happened while we were away
    };
    ws.onmessage = function (msg) {
      var event;
      try {
        event = JSON.parse(msg.data);
      } catch (e) {
        return;
      }
      if (!event || event.type === "pong") return;
      if (event.type === "alert" && event.alert === "order_locked") {
        toast(
          "有订单因多次核对失败被临时锁定，可能有人在猜测订单，请留意。",
          "An order was locked after repeated failed checks: someone may be guessing orders.",
          "error"
        );
        return;
      }
      scheduleRefresh();
    };
    ws.onclose = function () {
      if (state.ws !== ws) return;
      state.ws = null;
      clearInterval(state.pingTimer);
      setLive("offline");
      pollEvery(POLL_EVERY_MS);
      reconnectLater();
    };
    ws.onerror = function () {
      /* onclose follows */
    };
  }

  function reconnectLater() {
    if (!state.agent) return;
    state.wsTries += 1;
    var base = Math.min(30000, 1000 * Math.pow(2, state.wsTries - 1));
    var delay = base / 2 + Math.random() * (base / 2);
    clearTimeout(state.wsTimer);
    state.wsTimer = setTimeout(function () {
      // A refused handshake looks like any drop: check the session before trying again.
      api.get("/api/me").then(function (me) {
        if (me && me.csrf_token) state.csrf = me.csrf_token;
        connect();
      }, function (err) {
        if (err.status !== 401) connect();
      });
    }, delay);
  }

  function pollEvery(ms) {
    if (state.pollTimer && state.pollMs === ms) return;
    clearInterval(state.pollTimer);
    state.pollMs = ms;
    state.pollTimer = setInterval(refreshAll, ms);
  }

  function stopPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
    state.pollMs = 0;
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    $("login-form").addEventListener("submit", onLogin);
    $("password-form").addEventListener("submit", onPassword);
    $("password-cancel").addEventListener("click", onPasswordCancel);
    $("password-change").addEventListener("click", function () {
      askNewPassword(false);
    });
    $("logout").addEventListener("click", logout);
    $("claim-next").addEventListener("click", claimNext);
    $("reply-form").addEventListener("submit", onReply);
    $("reply-text").addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) onReply(e);
    });
    $("note").addEventListener("click", onNote);
    $("transfer").addEventListener("click", onTransfer);
    $("handback").addEventListener("click", onHandback);
    $("resolve").addEventListener("click", onResolve);
    $("unmask").addEventListener("click", onUnmask);
    $("remask").addEventListener("click", onRemask);
    $("conv-close").addEventListener("click", closeConversation);
    $("canned-select").addEventListener("change", onCanned);
    $("canned-form").addEventListener("submit", onCannedAdd);
    document.addEventListener("visibilitychange", function () {
      if (document.hidden || !state.agent || state.agent.must_change_password) return;
      refreshAll();
      loadCanned();
      loadAgents();
    });
    setInterval(tickWaits, 1000);
    boot();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

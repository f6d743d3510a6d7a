/*
 * Operations console (SPEC §7): the pipelines list, live.
 *
 * Sources of truth: the REST API (GET /api/v1/sync/pipelines with the filters; counters come
 * from its `counts`, computed over the whole filtered set) and the websocket /ws/pipelines/,
 * whose snapshots are hints: a snapshot of a row on this page replaces it in place, anything
 * else schedules a debounced re-read (at most one per second). Every (re)connect re-reads.
 *
 * Rules kept throughout: strict mode; no framework; no inline handlers (CSP-friendly); every
 * server string goes into the DOM through textContent or attributes, never innerHTML;
 * buttons are <button>s, dialogs trap focus and close on Escape, rows expand with
 * Enter/Space; state changes are announced in an aria-live region.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("pc-config");
  if (!configNode) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var urls = config.urls;

  var PAGE_SIZE = 25;
  var RELOAD_MIN_INTERVAL_MS = 1000; // live-triggered list re-reads: at most one per second
  var TYPING_DEBOUNCE_MS = 400;
  var WORKERS_REFRESH_MS = 10000;
  var PING_INTERVAL_MS = 25000;
  var PONG_TIMEOUT_MS = 10000;
  var BACKOFF_BASE_MS = 500;
  var REFUSED_CODES = [4401, 4403, 4404]; // the consumers' close codes for a refused socket
  var BACKOFF_MAX_MS = 15000;
  var SVG_NS = "http://www.w3.org/2000/svg";

  var STATUS_LABELS = {};
  config.statuses.forEach(function (s) { STATUS_LABELS[s.value] = s.label; });
  var JOB_TYPE_LABELS = {};
  config.job_types.forEach(function (t) { JOB_TYPE_LABELS[t.value] = t.label; });
  var MODULE_LABELS = {};
  config.modules.forEach(function (m) { MODULE_LABELS[String(m.value)] = m.label; });
  var PHASE_LABELS = { data: "Ingesting data", emissions: "Recalculating emissions", aggregation: "Aggregating" };
  var ENTITY_LABELS = { MODULE_PER_YEAR: "Per year", MODULE_UNIT_SPECIFIC: "Unit-specific", GLOBAL_PER_YEAR: "Global" };
  var STALE_REASONS = {
    pending_aggregation_stuck: "Aggregation waiting too long",
    no_aggregation_ever: "Never aggregated",
    last_aggregation_failed: "Last aggregation failed",
    last_aggregation_too_old: "Last aggregation too old"
  };
  var TERMINAL = { SUCCESS: true, PARTIAL: true, FAILED: true, CANCELLED: true };
  var FILTER_NAMES = ["state", "job_type", "module_type_id", "year", "has_errors", "since", "until", "q"];

  var state = {
    filters: emptyFilters(),
    offset: 0,
    items: [],
    total: 0,
    counts: {},
    loading: false,
    loaded: false,
    error: null,
    loadedAt: null,
    expanded: new Set(),
    openTimelines: new Set(),
    workers: null,
    workersError: null,
    workersFetchedAt: 0,
    stale: null,
    staleError: null,
    clockSkewMs: 0 // server clock − browser clock, from the websocket hello
  };

  var $ = function (id) { return document.getElementById(id); };
  var root = $("pc");
  var tbody = $("pc-rows");

  // --- DOM helpers ------------------------------------------------------------------------

  /* el("span", {class: "x", text: "y", title: "z", data: {k: v}, attrs: {...}}, [children]) */
  function el(tag, opts, children) {
    var node = document.createElement(tag);
    applyOpts(node, opts || {});
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) { return; }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function svg(tag, attrs, children) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, String(attrs[name])); });
    (children || []).forEach(function (child) {
      if (child) { node.appendChild(typeof child === "string" ? document.createTextNode(child) : child); }
    });
    return node;
  }

  function applyOpts(node, opts) {
    if (opts.class) { node.className = opts.class; }
    if (opts.text !== undefined && opts.text !== null) { node.textContent = String(opts.text); }
    if (opts.title) { node.title = String(opts.title); }
    if (opts.type) { node.type = opts.type; }
    if (opts.id) { node.id = opts.id; }
    if (opts.data) {
      Object.keys(opts.data).forEach(function (k) { node.dataset[k] = String(opts.data[k]); });
    }
    if (opts.attrs) {
      Object.keys(opts.attrs).forEach(function (k) {
        var v = opts.attrs[k];
        if (v !== null && v !== undefined && v !== false) { node.setAttribute(k, v === true ? "" : String(v)); }
      });
    }
  }

  function button(text, opts) {
    var b = el("button", Object.assign({ type: "button", class: "pc-btn", text: text }, opts || {}));
    return b;
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  }

  // --- Formatting -------------------------------------------------------------------------

  function serverNow() { return Date.now() + state.clockSkewMs; }

  function parseTime(iso) {
    if (!iso) { return null; }
    var t = Date.parse(iso);
    return isNaN(t) ? null : t;
  }

  /* The reference's duration format: "<1s", "Ns", "MmSSs", "HhMMm"; running measures to now. */
  function formatDuration(startIso, endIso) {
    var start = parseTime(startIso);
    if (start === null) { return "—"; }
    var end = endIso ? parseTime(endIso) : serverNow();
    var ms = end - start;
    if (!endIso && ms <= 0) { return "—"; }
    if (ms < 1000) { return "<1s"; }
    var s = Math.floor(ms / 1000);
    if (s < 60) { return s + "s"; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + "m" + pad2(s % 60) + "s"; }
    var h = Math.floor(m / 60);
    return h + "h" + pad2(m % 60) + "m";
  }

  function pad2(n) { return (n < 10 ? "0" : "") + n; }

  var dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  var timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  function formatDateTime(iso) {
    var t = parseTime(iso);
    return t === null ? "—" : dateTimeFormat.format(new Date(t));
  }

  function formatTime(iso) {
    var t = parseTime(iso);
    return t === null ? "—" : timeFormat.format(new Date(t));
  }

  function formatAge(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) { return seconds + "s ago"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + "m ago"; }
    return Math.floor(seconds / 3600) + "h ago";
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : (many || one + "s")); }

  function jobTypeLabel(type) { return JOB_TYPE_LABELS[type] || type || "—"; }

  function moduleLabel(p) {
    return p.module_title || p.module_label || (p.module_type_id ? "Module " + p.module_type_id : null);
  }

  function moduleYear(p) {
    var module = moduleLabel(p);
    var year = p.year ? String(p.year) : null;
    if (module && year) { return module + " / " + year; }
    return module || year || "—";
  }

  function scopeLabel(p) {
    var label = ENTITY_LABELS[p.entity_type] || p.entity_type || "—";
    if (p.entity_type === "MODULE_UNIT_SPECIFIC" && p.unit_institutional_id) {
      label += " · " + p.unit_institutional_id;
    }
    return label;
  }

  function humanize(name) {
    var text = String(name || "").replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function shortId(id) { return String(id || "").slice(0, 8); }

  /* Status tier of a pipeline: drives its colour (SUCCESS green, WARNING/PARTIAL amber,
     FAILED red, RUNNING blue, CANCELLED grey) and its label. */
  function tierOf(p) {
    switch (p.status) {
      case "SUCCESS":
        if ((p.jobs || []).some(function (j) { return j.result === "WARNING"; })) {
          return { tier: "warning", label: "Warning", icon: "!" };
        }
        return { tier: "success", label: "Success", icon: "✓" };
      case "PARTIAL": return { tier: "warning", label: "Partial", icon: "!" };
      case "FAILED": return { tier: "failed", label: "Failed", icon: "✗" };
      case "CANCELLED": return { tier: "cancelled", label: "Cancelled", icon: "⊘" };
      case "RUNNING": return { tier: "running", label: "Running", icon: "⟳" };
      default: return { tier: "queued", label: STATUS_LABELS[p.status] || "Not started", icon: "…" };
    }
  }

  function jobTier(j) {
    if (j.state !== "FINISHED") { return j.state === "RUNNING" ? "running" : "queued"; }
    return { SUCCESS: "success", WARNING: "warning", ERROR: "failed", CANCELLED: "cancelled" }[j.result] || "queued";
  }

  function jobBadgeText(j) { return j.state + (j.result ? " · " + j.result : ""); }

  function isDone(p) { return Boolean(p.progress && p.progress.done) || TERMINAL[p.status] === true; }

  /* The row's message: the error when there is one, the root's message when done, else the phase. */
  function messageOf(p) {
    if (p.has_errors && p.last_error) { return p.last_error; }
    if (isDone(p)) { return p.status_message || p.last_error || "—"; }
    var pr = p.progress || {};
    if (p.status === "NOT_STARTED") { return "Waiting for a worker"; }
    var phase = pr.phase ? "Phase " + pr.phase + "/" + (pr.phases_total || 3) : "";
    var label = PHASE_LABELS[pr.phase_label] || humanize(pr.phase_label || "");
    var latest = latestJob(p);
    var text = [phase, label].filter(Boolean).join(" · ");
    if (latest && latest.status_message && latest.state === "RUNNING") { text += " — " + latest.status_message; }
    return text || "—";
  }

  function latestJob(p) {
    var jobs = p.jobs || [];
    for (var i = jobs.length - 1; i >= 0; i -= 1) {
      if (jobs[i].state === "RUNNING") { return jobs[i]; }
    }
    return jobs.length ? jobs[jobs.length - 1] : null;
  }

  function processedFile(p) {
    var jobs = p.jobs || [];
    for (var i = 0; i < jobs.length; i += 1) {
      var path = jobs[i].meta && jobs[i].meta.processed_file_path;
      if (path) { return path; }
    }
    return null;
  }

  function fileUrl(path) {
    var encoded = String(path).split("/").map(encodeURIComponent).join("/");
    return urls.files.replace("{path}", encoded) + "?d=true";
  }

  /* A monotonic-enough version of a snapshot, to drop pushes older than what is shown. */
  function versionOf(p) {
    var best = parseTime(p.updated_at) || 0;
    (p.jobs || []).forEach(function (j) {
      [j.started_at, j.finished_at, j.created_at].forEach(function (iso) {
        var t = parseTime(iso);
        if (t !== null && t > best) { best = t; }
      });
      var history = j.status_history || [];
      if (history.length) {
        var t = parseTime(history[history.length - 1].ts);
        if (t !== null && t > best) { best = t; }
      }
    });
    return best;
  }

  // --- HTTP -------------------------------------------------------------------------------

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) { return decodeURIComponent(match[1]); }
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function ApiError(status, detail) {
    this.status = status;
    this.message = detail;
  }

  function api(url, options) {
    options = options || {};
    var method = options.method || "GET";
    var headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRFToken"] = csrfToken();
      headers["Content-Type"] = "application/json";
    }
    return fetch(url, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: options.body === undefined ? undefined : JSON.stringify(options.body)
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          var detail = (data && data.detail) || response.statusText || "request failed";
          throw new ApiError(response.status, response.status + ": " + detail);
        }
        return data;
      });
    });
  }

  function errorText(error) {
    if (error && error.message) { return error.message; }
    return "the server could not be reached";
  }

  // --- Filters ----------------------------------------------------------------------------

  function emptyFilters() {
    return { state: "", job_type: "", module_type_id: "", year: "", has_errors: false, since: "", until: "", q: "" };
  }

  function isFiltered(f) {
    return FILTER_NAMES.some(function (name) { return Boolean(f[name]); });
  }

  /* Filters as the API names them: since/until are local dates, sent as instants. */
  function apiFilters(f) {
    var out = {};
    if (f.state) { out.state = f.state; }
    if (f.job_type) { out.job_type = f.job_type; }
    if (f.module_type_id) { out.module_type_id = Number(f.module_type_id); }
    if (f.year) { out.year = Number(f.year); }
    if (f.has_errors) { out.has_errors = true; }
    if (f.since) { out.since = localDayStart(f.since).toISOString(); }
    if (f.until) { out.until = new Date(localDayStart(f.until).getTime() + 86400000 - 1).toISOString(); }
    if (f.q && f.q.trim()) { out.q = f.q.trim(); }
    return out;
  }

  function localDayStart(value) {
    var parts = value.split("-").map(Number);
    return new Date(parts[0], parts[1] - 1, parts[2]);
  }

  function listUrl(filters, offset, limit) {
    var params = new URLSearchParams();
    var f = apiFilters(filters);
    Object.keys(f).forEach(function (k) { params.set(k, String(f[k])); });
    params.set("limit", String(limit));
    params.set("offset", String(offset));
    return urls.pipelines + "?" + params.toString();
  }

  /* The filters live in the page's query string too (shareable; no navigation: replaceState). */
  function readFiltersFromLocation() {
    var params = new URLSearchParams(window.location.search);
    var f = emptyFilters();
    FILTER_NAMES.forEach(function (name) {
      var v = params.get(name);
      if (v === null) { return; }
      f[name] = name === "has_errors" ? v === "true" : v;
    });
    state.filters = f;
    var offset = Number(params.get("offset") || 0);
    state.offset = offset > 0 && isFinite(offset) ? Math.floor(offset) : 0;
  }

  function writeFiltersToLocation() {
    var params = new URLSearchParams();
    FILTER_NAMES.forEach(function (name) {
      var v = state.filters[name];
      if (v) { params.set(name, name === "has_errors" ? "true" : String(v)); }
    });
    if (state.offset) { params.set("offset", String(state.offset)); }
    var query = params.toString();
    window.history.replaceState(window.history.state, "", window.location.pathname + (query ? "?" + query : ""));
  }

  function describeFilters(f) {
    var parts = [];
    if (f.state) { parts.push("status " + (STATUS_LABELS[f.state] || f.state)); }
    if (f.job_type) { parts.push("job type " + jobTypeLabel(f.job_type)); }
    if (f.module_type_id) { parts.push("module " + (MODULE_LABELS[f.module_type_id] || f.module_type_id)); }
    if (f.year) { parts.push("year " + f.year); }
    if (f.has_errors) { parts.push("with errors"); }
    if (f.since) { parts.push("created from " + f.since); }
    if (f.until) { parts.push("created to " + f.until); }
    if (f.q && f.q.trim()) { parts.push("message contains “" + f.q.trim() + "”"); }
    return parts.length ? parts.join(", ") : "no filter: every pipeline";
  }

  /* Could this snapshot belong to the current list? (Only used to decide on a re-read.) */
  function matchesFilters(p, f) {
    if (f.state && p.status !== f.state) { return false; }
    if (f.job_type && p.job_type !== f.job_type &&
        !(p.jobs || []).some(function (j) { return j.job_type === f.job_type; })) { return false; }
    if (f.module_type_id && String(p.module_type_id) !== String(f.module_type_id)) { return false; }
    if (f.year && String(p.year) !== String(f.year)) { return false; }
    if (f.has_errors && !p.has_errors) { return false; }
    var created = parseTime(p.created_at);
    var af = apiFilters(f);
    if (af.since && created !== null && created < Date.parse(af.since)) { return false; }
    if (af.until && created !== null && created > Date.parse(af.until)) { return false; }
    if (af.q) {
      var q = af.q.toLowerCase();
      var texts = [p.last_error || ""].concat((p.jobs || []).map(function (j) { return j.status_message || ""; }));
      var said = texts.some(function (t) { return t.toLowerCase().indexOf(q) !== -1; });
      if (!said && String(p.unit_institutional_id || "").toLowerCase() !== q) { return false; }
    }
    return true;
  }

  function setupFilters() {
    var stateSelect = $("pc-f-state");
    config.statuses.forEach(function (s) { stateSelect.appendChild(el("option", { text: s.label, attrs: { value: s.value } })); });
    var typeSelect = $("pc-f-job-type");
    config.job_types.forEach(function (t) { typeSelect.appendChild(el("option", { text: t.label, attrs: { value: t.value } })); });
    var moduleSelect = $("pc-f-module");
    config.modules.forEach(function (m) { moduleSelect.appendChild(el("option", { text: m.label, attrs: { value: String(m.value) } })); });

    var immediate = [["pc-f-state", "state"], ["pc-f-job-type", "job_type"], ["pc-f-module", "module_type_id"],
      ["pc-f-since", "since"], ["pc-f-until", "until"]];
    immediate.forEach(function (pair) {
      $(pair[0]).addEventListener("change", function (event) { setFilter(pair[1], event.target.value); });
    });
    $("pc-f-errors").addEventListener("change", function (event) { setFilter("has_errors", event.target.checked); });
    [["pc-f-year", "year"], ["pc-f-q", "q"]].forEach(function (pair) {
      var timer = null;
      $(pair[0]).addEventListener("input", function (event) {
        var value = event.target.value;
        if (timer) { clearTimeout(timer); }
        timer = setTimeout(function () { timer = null; setFilter(pair[1], value); }, TYPING_DEBOUNCE_MS);
      });
    });
    $("pc-filters").addEventListener("submit", function (event) {
      event.preventDefault();
      state.filters.year = $("pc-f-year").value;
      state.filters.q = $("pc-f-q").value;
      filtersChanged();
    });
    $("pc-clear").addEventListener("click", function () {
      state.filters = emptyFilters();
      syncFilterControls();
      filtersChanged();
    });
  }

  function syncFilterControls() {
    var f = state.filters;
    var pairs = [["pc-f-state", f.state], ["pc-f-job-type", f.job_type], ["pc-f-module", f.module_type_id],
      ["pc-f-year", f.year], ["pc-f-since", f.since], ["pc-f-until", f.until], ["pc-f-q", f.q]];
    pairs.forEach(function (pair) {
      var control = $(pair[0]);
      var value = String(pair[1] || "");
      if (control.value !== value) { control.value = value; } // untouched: no caret jump while typing
    });
    $("pc-f-errors").checked = Boolean(f.has_errors);
  }

  function setFilter(name, value) {
    if (name === "year" && value && !/^\d{4}$/.test(String(value))) { return; } // wait for a whole year
    if (state.filters[name] === value) { return; }
    state.filters[name] = value;
    filtersChanged();
  }

  function filtersChanged() {
    state.offset = 0;
    writeFiltersToLocation();
    syncFilterControls();
    loadList();
  }

  // --- Loading ----------------------------------------------------------------------------

  var loadSeq = 0;
  var lastLoadStarted = 0;
  var reloadTimer = null;

  function loadList() {
    var seq = ++loadSeq;
    var startedAt = Date.now();
    lastLoadStarted = startedAt;
    state.loading = true;
    renderPager();
    return api(listUrl(state.filters, state.offset, PAGE_SIZE)).then(function (data) {
      if (seq !== loadSeq) { return; }
      if (!data.items.length && state.offset > 0 && data.total > 0) {
        // The page emptied under us (aborts, filters): go to the last page that has rows.
        state.offset = Math.max(0, Math.floor((data.total - 1) / PAGE_SIZE) * PAGE_SIZE);
        writeFiltersToLocation();
        loadList();
        return;
      }
      state.items = data.items.map(function (item) { return newerOf(item, startedAt); });
      state.total = data.total;
      state.counts = data.counts || {};
      state.error = null;
      state.loaded = true;
      state.loadedAt = Date.now();
      state.loading = false;
      renderAll();
    }, function (error) {
      if (seq !== loadSeq) { return; }
      state.error = errorText(error);
      state.loading = false;
      renderAll();
    });
  }

  /* A snapshot pushed after this list request started may be newer than the list's row. */
  var recentSnapshots = new Map();

  function newerOf(item, requestStartedAt) {
    var pushed = recentSnapshots.get(item.pipeline_id);
    if (pushed && pushed.receivedAt >= requestStartedAt && versionOf(pushed.snapshot) > versionOf(item)) {
      return pushed.snapshot;
    }
    return item;
  }

  /* Debounced re-read for live hints: at most one per RELOAD_MIN_INTERVAL_MS. The workers
     panel follows (who claimed what), at most every WORKERS_FOLLOW_MS. */
  var WORKERS_FOLLOW_MS = 3000;
  var workersTimer = null;

  function scheduleReload() {
    scheduleWorkers();
    if (reloadTimer) { return; }
    var wait = Math.max(150, lastLoadStarted + RELOAD_MIN_INTERVAL_MS - Date.now());
    reloadTimer = setTimeout(function () { reloadTimer = null; loadList(); }, wait);
  }

  function scheduleWorkers() {
    if (workersTimer) { return; }
    var wait = Math.max(150, state.workersFetchedAt + WORKERS_FOLLOW_MS - Date.now());
    workersTimer = setTimeout(function () { workersTimer = null; loadWorkers(); }, wait);
  }

  function loadWorkers() {
    return api(urls.workers).then(function (data) {
      state.workers = data;
      state.workersError = null;
      state.workersFetchedAt = Date.now();
      renderWorkers();
    }, function (error) {
      state.workersError = errorText(error);
      renderWorkers();
    });
  }

  function loadStale() {
    if (!urls.stale_stats) { return Promise.resolve(); }
    var url = urls.stale_stats + "?older_than_minutes=" + encodeURIComponent(String(config.stale_stats_minutes));
    return api(url).then(function (data) {
      state.stale = data;
      state.staleError = null;
      renderStale();
    }, function (error) {
      state.staleError = errorText(error);
      renderStale();
    });
  }

  function resync() {
    loadList();
    loadWorkers();
    loadStale();
  }

  // --- Rendering: counters, summary, pager ------------------------------------------------

  function renderAll() {
    renderCounters();
    renderSummary();
    renderRows();
    renderPager();
    root.dataset.ready = state.loaded ? "true" : "false";
  }

  function renderCounters() {
    var box = $("pc-counters");
    clear(box);
    var total = 0;
    config.statuses.forEach(function (s) { total += state.counts[s.value] || 0; });
    var all = button("", {
      class: "pc-counter pc-counter-all",
      data: { status: "" },
      attrs: { "aria-pressed": state.filters.state ? "false" : "true" }
    });
    all.appendChild(el("span", { class: "pc-counter-n", text: String(total) }));
    all.appendChild(el("span", { class: "pc-counter-label", text: "All" }));
    box.appendChild(all);
    config.statuses.forEach(function (s) {
      var tier = tierOf({ status: s.value, jobs: [] }).tier;
      var b = button("", {
        class: "pc-counter pc-tier-" + tier,
        data: { status: s.value },
        attrs: { "aria-pressed": state.filters.state === s.value ? "true" : "false" }
      });
      b.appendChild(el("span", { class: "pc-counter-n", text: String(state.counts[s.value] || 0) }));
      b.appendChild(el("span", { class: "pc-counter-label", text: s.label }));
      box.appendChild(b);
    });
  }

  function renderSummary() {
    var summary = $("pc-summary");
    clear(summary);
    if (state.error) {
      summary.appendChild(el("span", { class: "pc-error-text", text: "Could not load pipelines: " + state.error }));
      return;
    }
    if (!state.loaded) { summary.textContent = "Loading pipelines…"; return; }
    summary.appendChild(el("strong", { text: plural(state.total, "pipeline") }));
    summary.appendChild(document.createTextNode(" match — " + describeFilters(state.filters) + "."));
    if (state.loadedAt) {
      summary.appendChild(el("span", { class: "pc-muted", text: " Read at " + timeFormat.format(new Date(state.loadedAt)) + "." }));
    }
    $("pc-bulk").hidden = !config.can_operate;
  }

  function renderPager() {
    var count = state.items.length;
    $("pc-range").textContent = state.total
      ? (state.offset + 1) + "–" + (state.offset + count) + " of " + state.total
      : "";
    $("pc-prev").disabled = state.loading || state.offset === 0;
    $("pc-next").disabled = state.loading || state.offset + count >= state.total;
  }

  // --- Rendering: rows --------------------------------------------------------------------

  var COLUMNS = 11;

  function renderRows() {
    var focusKey = focusedKey();
    // Rows whose snapshot and expansion did not change are kept as they are (DOM reused), so
    // a re-read never swallows a click or a hover on a row that did not change.
    var kept = new Map();
    Array.prototype.forEach.call(tbody.querySelectorAll("tr.pc-row"), function (tr) {
      kept.set(tr.dataset.pipelineId, { main: tr, detail: tr._detail || null, fingerprint: tr._fingerprint });
    });
    clear(tbody);
    if (state.error && !state.items.length) {
      var retry = button("Try again", { class: "pc-btn pc-btn-small", data: { action: "reload" } });
      tbody.appendChild(el("tr", { class: "pc-placeholder" }, [
        el("td", { attrs: { colspan: COLUMNS } }, ["Could not load pipelines: " + state.error + " ", retry])
      ]));
      return;
    }
    if (!state.items.length) {
      var text = state.loaded ? "No pipeline matches these filters." : "Loading pipelines…";
      tbody.appendChild(el("tr", { class: "pc-placeholder" }, [el("td", { attrs: { colspan: COLUMNS }, text: text })]));
      return;
    }
    state.items.forEach(function (p) {
      var old = kept.get(p.pipeline_id);
      if (old && old.fingerprint === fingerprintOf(p)) {
        tbody.appendChild(old.main);
        if (old.detail) { tbody.appendChild(old.detail); }
        return;
      }
      rowsFor(p).forEach(function (tr) { tbody.appendChild(tr); });
    });
    restoreFocus(focusKey);
  }

  function fingerprintOf(p) {
    return (state.expanded.has(p.pipeline_id) ? "+" : "-") + JSON.stringify(p);
  }

  function focusedKey() {
    var active = document.activeElement;
    if (!active || !tbody.contains(active)) { return null; }
    var keyed = active.closest("[data-focus-key]");
    return keyed ? keyed.dataset.focusKey : null;
  }

  function restoreFocus(key) {
    if (!key) { return; }
    var nodes = tbody.querySelectorAll("[data-focus-key]");
    for (var i = 0; i < nodes.length; i += 1) {
      if (nodes[i].dataset.focusKey === key) { nodes[i].focus({ preventScroll: true }); return; }
    }
  }

  /* Replace one pipeline's rows in place (a live snapshot), keeping focus and open panels. */
  function replaceRows(p) {
    var existing = tbody.querySelectorAll("tr[data-pipeline-id]");
    var matches = [];
    for (var i = 0; i < existing.length; i += 1) {
      if (existing[i].dataset.pipelineId === p.pipeline_id) { matches.push(existing[i]); }
    }
    if (!matches.length) { return; }
    var focusKey = focusedKey();
    var fresh = rowsFor(p);
    var anchor = matches[0];
    fresh.forEach(function (tr) { tbody.insertBefore(tr, anchor); });
    matches.forEach(function (tr) { tbody.removeChild(tr); });
    restoreFocus(focusKey);
  }

  function rowsFor(p) {
    var id = p.pipeline_id;
    var expanded = state.expanded.has(id);
    var tier = tierOf(p);
    var detailId = "pc-detail-" + id;
    var done = isDone(p);

    var tr = el("tr", {
      class: "pc-row pc-tier-" + tier.tier + (expanded ? " pc-row-expanded" : ""),
      data: { pipelineId: id, status: p.status, focusKey: "row:" + id, tier: tier.tier },
      attrs: {
        tabindex: "0",
        "aria-expanded": expanded ? "true" : "false",
        "aria-controls": expanded ? detailId : null,
        "aria-label": jobTypeLabel(p.job_type) + ", " + moduleYear(p) + ", " + tier.label
      }
    });

    var toggle = button(expanded ? "▾" : "▸", {
      class: "pc-expand",
      data: { action: "toggle", focusKey: "toggle:" + id },
      attrs: {
        "aria-expanded": expanded ? "true" : "false",
        "aria-controls": expanded ? detailId : null,
        "aria-label": (expanded ? "Hide" : "Show") + " the jobs of pipeline " + shortId(id)
      }
    });
    tr.appendChild(el("td", { class: "pc-col-expand" }, [toggle]));

    var badge = el("span", { class: "pc-badge pc-tier-" + tier.tier, data: { role: "status-badge" } }, [
      el("span", { class: "pc-badge-icon", text: tier.icon, attrs: { "aria-hidden": "true" } }),
      el("span", { text: tier.label })
    ]);
    var statusCell = el("td", { class: "pc-col-status" }, [badge]);
    if (p.has_errors && !done) {
      statusCell.appendChild(el("span", { class: "pc-chip pc-chip-error", text: "with errors" }));
    }
    if (p.cancel_requested && !done) {
      statusCell.appendChild(el("span", { class: "pc-chip", text: "aborting" }));
    }
    tr.appendChild(statusCell);

    tr.appendChild(el("td", { class: "pc-col-pipeline" }, [
      el("span", { class: "pc-strong", text: jobTypeLabel(p.job_type) }),
      el("br"),
      el("code", { class: "pc-id", text: shortId(id), title: id })
    ]));
    tr.appendChild(el("td", { text: scopeLabel(p) }));
    tr.appendChild(el("td", { text: moduleYear(p) }));

    var finished = (p.jobs || []).filter(function (j) { return j.state === "FINISHED"; }).length;
    var jobsCell = el("td", { class: "pc-col-jobs" }, [
      el("span", { text: finished + "/" + p.job_count + " ✓", attrs: { "aria-label": finished + " of " + p.job_count + " jobs finished" } })
    ]);
    if (p.error_count) {
      jobsCell.appendChild(el("span", { class: "pc-error-text", text: " · " + p.error_count + " ✗", attrs: { "aria-label": plural(p.error_count, "job") + " in error" } }));
    }
    tr.appendChild(jobsCell);

    tr.appendChild(el("td", { class: "pc-col-duration" }, [durationNode(p.started_at, p.finished_at)]));
    tr.appendChild(el("td", { class: "pc-col-started", text: formatDateTime(p.started_at || p.created_at), title: p.started_at ? "started" : "created (not started yet)" }));
    tr.appendChild(el("td", { class: "pc-col-author", text: p.author || "system" }));

    var message = messageOf(p);
    tr.appendChild(el("td", { class: "pc-col-message" }, [
      button(message, {
        class: "pc-message" + (p.has_errors ? " pc-error-text" : ""),
        title: "Show the full message",
        data: { action: "message", focusKey: "message:" + id, scope: "pipeline" }
      })
    ]));

    tr.appendChild(el("td", { class: "pc-col-actions" }, actionsFor(p, done)));

    var rows = [tr];
    tr._fingerprint = fingerprintOf(p);
    tr._detail = null;
    if (expanded) {
      tr._detail = detailRow(p, detailId);
      rows.push(tr._detail);
    }
    return rows;
  }

  function durationNode(startedAt, finishedAt) {
    var node = el("span", { class: "pc-duration", text: formatDuration(startedAt, finishedAt) });
    if (startedAt && !finishedAt) {
      node.dataset.running = "true";
      node.dataset.start = startedAt;
    }
    return node;
  }

  function actionsFor(p, done) {
    var id = p.pipeline_id;
    var actions = [];
    if (config.can_operate && !done) {
      actions.push(button("Abort", {
        class: "pc-btn pc-btn-small pc-btn-danger",
        data: { action: "abort", focusKey: "abort:" + id },
        attrs: { "aria-label": "Abort pipeline " + shortId(id) }
      }));
    }
    if (config.can_operate && done && (p.status === "FAILED" || p.status === "PARTIAL" || p.status === "CANCELLED")) {
      actions.push(button("Retry failed", {
        class: "pc-btn pc-btn-small",
        data: { action: "retry", focusKey: "retry:" + id },
        attrs: { "aria-label": "Retry the failed jobs of pipeline " + shortId(id) }
      }));
    }
    var path = processedFile(p);
    if (path && urls.files) {
      actions.push(el("a", {
        class: "pc-btn pc-btn-small",
        text: "Download",
        title: path,
        data: { focusKey: "download:" + id, action: "download" },
        attrs: { href: fileUrl(path), download: "", "aria-label": "Download the processed file " + path.split("/").pop() }
      }));
    }
    if (!actions.length) { actions.push(el("span", { class: "pc-muted", text: "—" })); }
    return [el("div", { class: "pc-actions" }, actions)];
  }

  // --- Rendering: expanded row (DAG, jobs, phases, timeline) -------------------------------

  function detailRow(p, detailId) {
    // The body does not widen the table (see .pc-detail-body): the columns stay as the rows set them.
    var cell = el("div", { class: "pc-detail-body" });
    var tr = el("tr", { class: "pc-detail", id: detailId, data: { pipelineId: p.pipeline_id } }, [
      el("td", { attrs: { colspan: COLUMNS } }, [cell])
    ]);

    var facts = el("dl", { class: "pc-facts" }, [
      ["Pipeline", el("code", { text: p.pipeline_id })],
      ["Created", formatDateTime(p.created_at)],
      ["Started", formatDateTime(p.started_at)],
      ["Finished", formatDateTime(p.finished_at)],
      ["Progress", progressText(p)]
    ].map(function (pair) {
      return el("div", { class: "pc-fact" }, [el("dt", { text: pair[0] }), el("dd", {}, [pair[1]])]);
    }));
    cell.appendChild(facts);
    if (p.last_error) {
      cell.appendChild(el("p", { class: "pc-last-error" }, [
        el("strong", { text: "Last error: " }),
        button(p.last_error, {
          class: "pc-message pc-error-text",
          data: { action: "message", scope: "error", focusKey: "error:" + p.pipeline_id },
          title: "Show the full error"
        })
      ]));
    }

    var layout = el("div", { class: "pc-detail-grid" });
    layout.appendChild(el("figure", { class: "pc-dag" }, [
      dagSvg(p),
      el("figcaption", { class: "pc-muted", text: "Job graph: each arrow goes from a job to a job it chained." })
    ]));
    var list = el("ol", { class: "pc-jobs", attrs: { "aria-label": "Jobs of pipeline " + shortId(p.pipeline_id) } });
    (p.jobs || []).forEach(function (job) { list.appendChild(jobItem(p, job)); });
    layout.appendChild(list);
    cell.appendChild(layout);
    return tr;
  }

  function progressText(p) {
    var pr = p.progress || {};
    if (isDone(p)) { return "done"; }
    var label = PHASE_LABELS[pr.phase_label] || humanize(pr.phase_label || "");
    return pr.phase ? "phase " + pr.phase + " of " + (pr.phases_total || 3) + (label ? " · " + label : "") : "waiting";
  }

  /* Layered layout: depth = distance from the root along parent links; one column per depth,
     jobs of a column in id order. Edges are drawn parent → child with an arrowhead. */
  function dagLayout(jobs) {
    var byId = new Map();
    jobs.forEach(function (j) { byId.set(j.job_id, j); });
    var depth = new Map();
    function depthOf(j, guard) {
      if (depth.has(j.job_id)) { return depth.get(j.job_id); }
      var parent = j.parent_id !== null && j.parent_id !== undefined ? byId.get(j.parent_id) : null;
      var d = parent && guard < jobs.length ? depthOf(parent, guard + 1) + 1 : 0;
      depth.set(j.job_id, d);
      return d;
    }
    var columns = [];
    jobs.slice().sort(function (a, b) { return a.job_id - b.job_id; }).forEach(function (j) {
      var d = depthOf(j, 0);
      (columns[d] = columns[d] || []).push(j);
    });
    return { columns: columns, byId: byId };
  }

  function dagSvg(p) {
    var jobs = p.jobs || [];
    var layout = dagLayout(jobs);
    var W = 224, H = 50, GX = 56, GY = 14, PAD = 8;
    var rows = layout.columns.reduce(function (m, c) { return Math.max(m, (c || []).length); }, 1);
    var width = PAD * 2 + layout.columns.length * W + Math.max(0, layout.columns.length - 1) * GX;
    var height = PAD * 2 + rows * H + (rows - 1) * GY;
    var pos = new Map();
    layout.columns.forEach(function (column, ci) {
      var offset = ((rows - column.length) * (H + GY)) / 2;
      column.forEach(function (j, ri) {
        pos.set(j.job_id, { x: PAD + ci * (W + GX), y: PAD + offset + ri * (H + GY) });
      });
    });

    var markerId = "pc-arrow-" + p.pipeline_id;
    var titleId = "pc-dag-title-" + p.pipeline_id;
    var descId = "pc-dag-desc-" + p.pipeline_id;
    var edgesText = [];
    var root = svg("svg", {
      class: "pc-dag-svg",
      width: width,
      height: height,
      viewBox: "0 0 " + width + " " + height,
      role: "img",
      "aria-labelledby": titleId + " " + descId,
      "data-pipeline-id": p.pipeline_id
    });
    root.appendChild(svg("title", { id: titleId }, ["Job graph of pipeline " + shortId(p.pipeline_id)]));
    var desc = svg("desc", { id: descId });
    root.appendChild(desc);
    root.appendChild(svg("defs", {}, [
      svg("marker", { id: markerId, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, [
        svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "pc-dag-arrow" })
      ])
    ]));

    var edges = svg("g", { class: "pc-dag-edges" });
    jobs.forEach(function (j) {
      if (j.parent_id === null || j.parent_id === undefined || !pos.has(j.parent_id)) { return; }
      var a = pos.get(j.parent_id), b = pos.get(j.job_id);
      var x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x - 2, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      edges.appendChild(svg("path", {
        class: "pc-dag-edge",
        d: "M " + x1 + " " + y1 + " C " + mx + " " + y1 + ", " + mx + " " + y2 + ", " + x2 + " " + y2,
        "marker-end": "url(#" + markerId + ")",
        "data-from": j.parent_id,
        "data-to": j.job_id
      }));
      edgesText.push("#" + j.parent_id + " → #" + j.job_id);
    });
    root.appendChild(edges);

    var nodes = svg("g", { class: "pc-dag-nodes" });
    jobs.forEach(function (j) {
      var at = pos.get(j.job_id);
      var tier = jobTier(j);
      var detLabel = j.data_entry_type_title || j.data_entry_type_label || (j.data_entry_type_id ? "det " + j.data_entry_type_id : "");
      var line2 = [j.result || j.state, detLabel].filter(Boolean).join(" · ");
      var g = svg("g", {
        class: "pc-dag-node pc-tier-" + tier,
        transform: "translate(" + at.x + " " + at.y + ")",
        "data-job-id": j.job_id,
        "data-state": j.state,
        "data-result": j.result || ""
      }, [
        svg("title", {}, ["#" + j.job_id + " " + jobTypeLabel(j.job_type) + " — " + jobBadgeText(j) + (j.status_message ? "\n" + j.status_message : "")]),
        svg("rect", { width: W, height: H, rx: 7, ry: 7 }),
        svg("rect", { class: "pc-dag-stripe", width: 6, height: H, rx: 3, ry: 3 }),
        svg("text", { x: 14, y: 20, class: "pc-dag-label" }, [truncate("#" + j.job_id + " " + j.job_type, 28)]),
        svg("text", { x: 14, y: 38, class: "pc-dag-sub" }, [truncate(line2, 34)])
      ]);
      nodes.appendChild(g);
    });
    root.appendChild(nodes);
    desc.textContent = jobs.length + " jobs. " + (edgesText.length ? "Edges: " + edgesText.join(", ") + "." : "No edges.");
    return root;
  }

  function truncate(text, max) {
    text = String(text || "");
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function jobItem(p, j) {
    var tier = jobTier(j);
    var id = "pc-job-" + j.job_id;
    var detLabel = j.data_entry_type_title || j.data_entry_type_label || (j.data_entry_type_id ? "det " + j.data_entry_type_id : null);
    var item = el("li", { class: "pc-job pc-tier-" + tier, id: id, data: { jobId: j.job_id } });
    var head = el("div", { class: "pc-job-head" }, [
      el("span", { class: "pc-badge pc-tier-" + tier, text: jobBadgeText(j) }),
      el("span", { class: "pc-strong", text: "#" + j.job_id + " " + jobTypeLabel(j.job_type) }),
      j.parent_id ? el("span", { class: "pc-muted", text: "← #" + j.parent_id }) : null
    ]);
    item.appendChild(head);

    var facts = [];
    if (detLabel) { facts.push(detLabel); }
    facts.push("duration " + formatDuration(j.started_at, j.finished_at));
    facts.push("attempt " + j.attempts + "/" + j.max_attempts);
    var factLine = el("p", { class: "pc-job-facts" }, [facts.join(" · ")]);
    if (j.worker) {
      factLine.appendChild(document.createTextNode(" · worker "));
      factLine.appendChild(el("code", { text: j.worker }));
    }
    if (j.cancel_requested && j.state !== "FINISHED") {
      factLine.appendChild(el("span", { class: "pc-chip", text: "stop requested" }));
    }
    item.appendChild(factLine);

    if (j.status_message) {
      item.appendChild(el("p", { class: "pc-job-message" }, [
        button(j.status_message, {
          class: "pc-message" + (j.result === "ERROR" ? " pc-error-text" : ""),
          title: "Show the full message",
          data: { action: "message", scope: "job", jobId: j.job_id, focusKey: "job-message:" + j.job_id }
        })
      ]));
    }

    var meta = j.meta || {};
    var stats = meta.stats;
    if (stats && Object.keys(stats).length) {
      item.appendChild(el("p", { class: "pc-job-stats pc-muted", text: Object.keys(stats).map(function (k) {
        return humanize(k) + ": " + stats[k];
      }).join(" · ") }));
    }
    if (meta.first_row_error) {
      item.appendChild(el("p", { class: "pc-job-stats pc-error-text", text: "First row error: " + meta.first_row_error }));
    }
    if (meta.progress && meta.progress.total && j.state === "RUNNING") {
      var pct = Math.min(100, Math.round((100 * (meta.progress.processed || 0)) / meta.progress.total));
      item.appendChild(el("div", { class: "pc-progress" }, [
        el("progress", { attrs: { max: "100", value: String(pct), "aria-label": "Progress of job #" + j.job_id } }),
        el("span", { class: "pc-muted", text: (meta.progress.processed || 0) + " / " + meta.progress.total })
      ]));
    }
    if (Array.isArray(meta.phases) && meta.phases.length) {
      item.appendChild(phasesList(j, meta.phases));
    }
    item.appendChild(timeline(j));
    return item;
  }

  function phasesList(j, phases) {
    var list = el("ul", { class: "pc-phases", attrs: { "aria-label": "Phases of job #" + j.job_id } });
    phases.forEach(function (phase) {
      var st = phase.state || "pending";
      var icon = { finished: "✓", running: "⟳", failed: "✗", error: "✗" }[st] || "○";
      var chip = el("li", {
        class: "pc-phase pc-phase-" + st,
        title: phase.error ? String(phase.error) : (st + (phase.finished_at ? " at " + formatTime(phase.finished_at) : "")),
        data: { phase: phase.name, state: st }
      }, [
        el("span", { class: "pc-phase-icon", text: icon, attrs: { "aria-hidden": "true" } }),
        el("span", { text: humanize(phase.name) }),
        el("span", { class: "pc-sr", text: " — " + st })
      ]);
      if (phase.error) { chip.appendChild(el("span", { class: "pc-phase-error", text: ": " + truncate(phase.error, 80) })); }
      list.appendChild(chip);
    });
    return list;
  }

  function timeline(j) {
    var history = j.status_history || [];
    var open = state.openTimelines.has(j.job_id);
    var details = el("details", { class: "pc-timeline", data: { jobId: j.job_id } });
    if (open) { details.open = true; }
    details.appendChild(el("summary", {
      text: "Timeline (" + plural(history.length, "entry", "entries") + ")",
      data: { focusKey: "timeline:" + j.job_id }
    }));
    var list = el("ol", { class: "pc-timeline-list" });
    history.forEach(function (entry) {
      list.appendChild(el("li", { class: "pc-timeline-entry pc-kind-" + String(entry.kind || "note").replace(/[^a-z_-]/gi, "") }, [
        el("time", { text: formatTime(entry.ts), attrs: { datetime: entry.ts || null }, title: formatDateTime(entry.ts) }),
        el("span", { class: "pc-timeline-kind", text: entry.kind || "" }),
        el("span", { class: "pc-timeline-message", text: entry.message || "" })
      ]));
    });
    if (!history.length) { list.appendChild(el("li", { class: "pc-muted", text: "No entry yet." })); }
    details.appendChild(list);
    return details;
  }

  // --- Workers and stale stats ------------------------------------------------------------

  function codeKey(w) {
    if (!w.git_sha && !w.app_version) { return null; }
    return (w.app_version || "?") + (w.git_sha ? "@" + String(w.git_sha).slice(0, 7) : "");
  }

  function renderWorkers() {
    var body = $("pc-workers-body");
    var badge = $("pc-workers-badge");
    clear(body);
    renderBanners();
    if (state.workersError) {
      body.appendChild(el("p", { class: "pc-banner pc-banner-error", text: "Could not load workers: " + state.workersError }));
      return;
    }
    var workers = state.workers || [];
    var live = workers.filter(function (w) { return w.kind === "worker"; }).length;
    badge.textContent = live + " live";
    badge.className = "pc-chip " + (live ? "pc-chip-ok" : "pc-chip-error");
    if (!workers.length) {
      body.appendChild(el("p", { class: "pc-muted", text: "No live workers." }));
      return;
    }
    var table = el("table", { class: "pc-mini-table" });
    table.appendChild(el("thead", {}, [el("tr", {}, ["Process", "Kind", "Commit", "Version", "Heartbeat", "Claimed"].map(function (h) {
      return el("th", { text: h, attrs: { scope: "col" } });
    }))]));
    var rows = el("tbody");
    workers.forEach(function (w) {
      var claimed = el("span", { class: "pc-chip" + (w.claimed_job_count > 0 ? " pc-chip-busy" : ""), text: String(w.claimed_job_count) });
      rows.appendChild(el("tr", { data: { pod: w.pod_id } }, [
        el("td", {}, [el("code", { text: w.pod_id })]),
        el("td", { text: w.kind }),
        el("td", {}, [el("code", { text: w.git_sha ? String(w.git_sha).slice(0, 7) : "—", title: w.git_sha || "" })]),
        el("td", { text: w.app_version || "—" }),
        el("td", {}, [el("span", {
          class: "pc-age",
          text: formatAge(w.heartbeat_age_seconds),
          data: { age: w.heartbeat_age_seconds },
          title: formatDateTime(w.last_heartbeat_at)
        })]),
        el("td", {}, [claimed])
      ]));
    });
    table.appendChild(rows);
    body.appendChild(table);
  }

  function renderBanners() {
    var box = $("pc-banners");
    clear(box);
    var workers = state.workers || [];
    var versions = new Map();
    workers.forEach(function (w) {
      var key = codeKey(w);
      if (key) { versions.set(key, (versions.get(key) || 0) + 1); }
    });
    if (versions.size > 1) {
      var parts = [];
      versions.forEach(function (n, key) { parts.push(key + " (" + plural(n, "process", "processes") + ")"); });
      box.appendChild(el("div", { class: "pc-banner pc-banner-warning", attrs: { role: "alert" }, data: { banner: "mixed-code" } }, [
        el("strong", { text: "Live processes run different code: " }),
        parts.join(", ") + ". Jobs may behave differently depending on the worker that claims them; finish the deploy or stop the old processes."
      ]));
    }
    if (state.workers && !workers.some(function (w) { return w.kind === "worker"; })) {
      box.appendChild(el("div", { class: "pc-banner pc-banner-error", attrs: { role: "alert" }, data: { banner: "no-worker" } }, [
        el("strong", { text: "No live worker: " }), "queued jobs will not start until one runs (manage.py run_worker)."
      ]));
    }
  }

  function renderStale() {
    var panel = $("pc-stale");
    var body = $("pc-stale-body");
    var badge = $("pc-stale-badge");
    panel.hidden = false;
    clear(body);
    if (state.staleError) {
      body.appendChild(el("p", { class: "pc-banner pc-banner-error", text: "Could not load report stats health: " + state.staleError }));
      return;
    }
    var rows = state.stale || [];
    badge.textContent = rows.length ? rows.length + " stale" : "up to date";
    badge.className = "pc-chip " + (rows.length ? "pc-chip-warn" : "pc-chip-ok");
    if (!rows.length) {
      body.appendChild(el("p", { class: "pc-muted", text: "Every module's report stats were aggregated within the last " + config.stale_stats_minutes + " minutes, or have nothing to aggregate." }));
      return;
    }
    var shown = rows.slice(0, 8);
    var table = el("table", { class: "pc-mini-table" });
    table.appendChild(el("thead", {}, [el("tr", {}, ["Module", "Year", "Why", "Last aggregation"].map(function (h) {
      return el("th", { text: h, attrs: { scope: "col" } });
    }))]));
    var tb = el("tbody");
    shown.forEach(function (r) {
      tb.appendChild(el("tr", {}, [
        el("td", { text: MODULE_LABELS[String(r.module_type_id)] || "Module " + r.module_type_id }),
        el("td", { text: String(r.year) }),
        el("td", { text: STALE_REASONS[r.why_stale] || humanize(r.why_stale) }),
        el("td", { text: r.last_finished_aggregation_at ? formatDateTime(r.last_finished_aggregation_at) : "never" })
      ]));
    });
    table.appendChild(tb);
    body.appendChild(table);
    if (rows.length > shown.length) {
      body.appendChild(el("p", { class: "pc-muted", text: "and " + (rows.length - shown.length) + " more." }));
    }
  }

  // --- Dialogs ----------------------------------------------------------------------------

  var FOCUSABLE = "button:not([disabled]), [href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

  /* Native modal dialogs make the page inert; Tab is also kept inside explicitly, Escape
     closes (the dialog's cancel event), and focus returns to the control that opened it. */
  function setupDialog(dialog, onClose) {
    dialog.addEventListener("keydown", function (event) {
      if (event.key !== "Tab") { return; }
      var items = Array.prototype.filter.call(dialog.querySelectorAll(FOCUSABLE), function (n) { return n.offsetParent !== null; });
      if (!items.length) { return; }
      var first = items[0], last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
      else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
    });
    dialog.addEventListener("close", function () {
      var opener = dialog._opener;
      dialog._opener = null;
      if (onClose) { onClose(); }
      if (opener && document.contains(opener)) { opener.focus(); }
      else { restoreFocus(dialog._openerKey); }
    });
  }

  function openDialog(dialog, opener, initialFocus) {
    dialog._opener = opener || null;
    dialog._openerKey = opener && opener.dataset ? opener.dataset.focusKey : null;
    dialog.showModal();
    if (initialFocus) { initialFocus.focus(); }
  }

  var messageDialog = $("pc-message-dialog");
  setupDialog(messageDialog);
  $("pc-message-close").addEventListener("click", function () { messageDialog.close(); });
  $("pc-message-copy").addEventListener("click", function () {
    copyText($("pc-message-text").textContent).then(function () { toast("Copied", "ok"); }, function () { toast("Copy failed", "error"); });
  });

  function showMessage(title, text, opener) {
    $("pc-message-title").textContent = title;
    $("pc-message-text").textContent = text;
    openDialog(messageDialog, opener, $("pc-message-copy"));
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = el("textarea", { class: "pc-sr", attrs: { readonly: "true" } });
      area.value = text;
      messageDialog.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      messageDialog.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  var confirmDialog = $("pc-confirm-dialog");
  var confirmResolve = null;
  setupDialog(confirmDialog, function () {
    var resolve = confirmResolve;
    confirmResolve = null;
    if (resolve) { resolve(confirmDialog.returnValue === "ok"); }
  });
  $("pc-confirm-cancel").addEventListener("click", function () { confirmDialog.close("cancel"); });
  $("pc-confirm-ok").addEventListener("click", function () { confirmDialog.close("ok"); });
  // Clicks on the backdrop do not dismiss it (an accidental click must not decide); Escape does.

  function confirmAction(options, opener) {
    $("pc-confirm-title").textContent = options.title;
    $("pc-confirm-body").textContent = options.body;
    $("pc-confirm-caption").textContent = options.caption || "";
    var ok = $("pc-confirm-ok");
    ok.textContent = options.confirmLabel || "Confirm";
    ok.disabled = Boolean(options.disabled);
    confirmDialog.returnValue = "";
    return new Promise(function (resolve) {
      confirmResolve = resolve;
      openDialog(confirmDialog, opener, $("pc-confirm-cancel"));
    });
  }

  // --- Toasts and announcements -----------------------------------------------------------

  function toast(text, kind) {
    var box = $("pc-toasts");
    var node = el("div", { class: "pc-toast pc-toast-" + (kind || "info"), text: text, attrs: { role: kind === "error" ? "alert" : "status" } });
    box.appendChild(node);
    setTimeout(function () { if (node.parentNode) { node.parentNode.removeChild(node); } }, kind === "error" ? 8000 : 3500);
  }

  function announce(text) {
    var region = $("pc-announce");
    region.textContent = text;
  }

  // --- Actions ----------------------------------------------------------------------------

  function findItem(id) {
    for (var i = 0; i < state.items.length; i += 1) {
      if (state.items[i].pipeline_id === id) { return state.items[i]; }
    }
    return null;
  }

  function withBusy(control, promise) {
    if (control) { control.disabled = true; control.setAttribute("aria-busy", "true"); }
    return promise.then(function (v) {
      if (control) { control.disabled = false; control.removeAttribute("aria-busy"); }
      return v;
    }, function (e) {
      if (control) { control.disabled = false; control.removeAttribute("aria-busy"); }
      throw e;
    });
  }

  function abortPipeline(p, control) {
    var caption = "#" + p.latest_job_id + " · " + p.job_type + " · " + moduleYear(p) + " · pipeline " + p.pipeline_id;
    confirmAction({
      title: "Abort pipeline?",
      body: "Every job of this pipeline that has not finished ends CANCELLED: queued jobs at once, running handlers at their next progress write, rolling back their data. Jobs that already finished keep their result. Failed and cancelled jobs can be retried afterwards.",
      caption: caption,
      confirmLabel: "Abort pipeline"
    }, control).then(function (confirmed) {
      if (!confirmed) { return; }
      withBusy(control, api(urls.abort.replace("{id}", p.pipeline_id), { method: "POST" })).then(function (data) {
        toast("Pipeline aborted", "ok");
        if (data && data.pipeline) { applySnapshot(data.pipeline); }
        scheduleReload();
      }, function (error) {
        toast("Abort failed: " + errorText(error), "error");
      });
    });
  }

  function retryPipeline(p, control) {
    withBusy(control, api(urls.retry.replace("{id}", p.pipeline_id), { method: "POST" })).then(function (data) {
      var n = data && data.retried_job_ids ? data.retried_job_ids.length : 0;
      toast("Retrying " + plural(n, "job"), "ok");
      if (data && data.pipeline) { applySnapshot(data.pipeline); }
      scheduleReload();
    }, function (error) {
      toast("Retry failed: " + errorText(error), "error");
    });
  }

  /* Bulk on the current filter: count first (the list's total for the same filters), state
     it in the confirmation, then POST /bulk with the same filters. */
  function bulk(action, control) {
    var filters = Object.assign({}, state.filters);
    withBusy(control, api(listUrl(filters, 0, 1))).then(function (data) {
      var n = data.total;
      var verb = action === "abort" ? "Abort" : "Retry failed jobs of";
      var body = action === "abort"
        ? n + " " + (n === 1 ? "pipeline matches" : "pipelines match") + " the current filters (" + describeFilters(filters) + "). Every job of theirs that has not finished will end CANCELLED; finished pipelines are skipped."
        : n + " " + (n === 1 ? "pipeline matches" : "pipelines match") + " the current filters (" + describeFilters(filters) + "). Their failed and cancelled jobs will run again; pipelines with nothing to retry are skipped.";
      return confirmAction({
        title: n ? verb + " " + plural(n, "pipeline") + "?" : "No pipeline matches",
        body: body,
        caption: n ? "" : "Change the filters to select pipelines.",
        confirmLabel: n ? verb + " " + n : "Nothing to do",
        disabled: n === 0
      }, control).then(function (confirmed) {
        if (!confirmed) { return; }
        return withBusy(control, api(urls.bulk, { method: "POST", body: { action: action, filters: apiFilters(filters) } })).then(function (result) {
          toast((action === "abort" ? "Aborted " : "Retried ") + result.applied + " of " + result.matched + " matching (" + result.skipped + " skipped)", "ok");
          scheduleReload();
        });
      });
    }).catch(function (error) {
      toast("Bulk " + action + " failed: " + errorText(error), "error");
    });
  }

  function toggleRow(id) {
    if (state.expanded.has(id)) { state.expanded.delete(id); } else { state.expanded.add(id); }
    var p = findItem(id);
    if (p) { replaceRows(p); }
  }

  function setupTable() {
    tbody.addEventListener("click", function (event) {
      var control = event.target.closest("[data-action]");
      var row = event.target.closest("tr[data-pipeline-id]");
      if (!row) {
        if (control && control.dataset.action === "reload") { loadList(); }
        return;
      }
      var id = row.dataset.pipelineId;
      var p = findItem(id);
      if (!p) { return; }
      if (!control) {
        // A click on the row itself (not on its controls, not inside the expanded panel) toggles it.
        if (row.classList.contains("pc-row") && !event.target.closest("a, button, summary, details")) { toggleRow(id); }
        return;
      }
      var action = control.dataset.action;
      if (action === "toggle") { toggleRow(id); }
      else if (action === "message") {
        event.preventDefault();
        if (control.dataset.scope === "job") {
          var jobId = Number(control.dataset.jobId);
          var job = (p.jobs || []).filter(function (j) { return j.job_id === jobId; })[0];
          showMessage("Job #" + jobId + " " + (job ? jobTypeLabel(job.job_type) : "") + " — message", job ? job.status_message : "", control);
        } else if (control.dataset.scope === "error") {
          showMessage("Pipeline " + shortId(id) + " — last error", p.last_error || "", control);
        } else {
          showMessage("Pipeline " + shortId(id) + " — message", messageOf(p), control);
        }
      }
      else if (action === "abort") { abortPipeline(p, control); }
      else if (action === "retry") { retryPipeline(p, control); }
    });
    tbody.addEventListener("keydown", function (event) {
      var row = event.target;
      if (!(row instanceof HTMLTableRowElement) || !row.classList.contains("pc-row")) { return; }
      if (event.key === "Enter" || event.key === " " || event.key === "Spacebar") {
        event.preventDefault();
        toggleRow(row.dataset.pipelineId);
      }
    });
    tbody.addEventListener("toggle", function (event) {
      var details = event.target;
      if (!(details instanceof HTMLDetailsElement) || !details.dataset.jobId) { return; }
      var jobId = Number(details.dataset.jobId);
      if (details.open) { state.openTimelines.add(jobId); } else { state.openTimelines.delete(jobId); }
    }, true);

    $("pc-counters").addEventListener("click", function (event) {
      var b = event.target.closest("button[data-status]");
      if (!b) { return; }
      var status = b.dataset.status;
      state.filters.state = state.filters.state === status ? "" : status;
      filtersChanged();
    });
    $("pc-prev").addEventListener("click", function () {
      state.offset = Math.max(0, state.offset - PAGE_SIZE);
      writeFiltersToLocation();
      loadList();
    });
    $("pc-next").addEventListener("click", function () {
      state.offset += PAGE_SIZE;
      writeFiltersToLocation();
      loadList();
    });
    $("pc-refresh").addEventListener("click", resync);
    $("pc-workers-refresh").addEventListener("click", function () { loadWorkers(); loadStale(); });
    $("pc-bulk-abort").addEventListener("click", function (event) { bulk("abort", event.currentTarget); });
    $("pc-bulk-retry").addEventListener("click", function (event) { bulk("retry", event.currentTarget); });
  }

  // --- Live updates -----------------------------------------------------------------------

  function applySnapshot(snapshot) {
    if (!snapshot || !snapshot.pipeline_id) { return; }
    recentSnapshots.set(snapshot.pipeline_id, { snapshot: snapshot, receivedAt: Date.now() });
    if (recentSnapshots.size > 500) { recentSnapshots.delete(recentSnapshots.keys().next().value); }
    var index = -1;
    for (var i = 0; i < state.items.length; i += 1) {
      if (state.items[i].pipeline_id === snapshot.pipeline_id) { index = i; break; }
    }
    if (index === -1) {
      // Not on this page: a new pipeline, or one from another page. Re-read when it could show here.
      if (state.offset === 0 && matchesFilters(snapshot, state.filters)) { scheduleReload(); }
      return;
    }
    var previous = state.items[index];
    if (versionOf(snapshot) < versionOf(previous)) { return; } // an older push arriving late
    state.items[index] = snapshot;
    replaceRows(snapshot);
    if (previous.status !== snapshot.status) {
      announce(jobTypeLabel(snapshot.job_type) + " " + moduleYear(snapshot) + " (pipeline " + shortId(snapshot.pipeline_id) + ") is now " + tierOf(snapshot).label + ".");
      scheduleReload(); // the counters changed
    }
  }

  var socketState = { socket: null, attempts: 0, retryTimer: null, pingTimer: null, pongTimer: null };

  function setConnection(mode, delayMs) {
    var node = $("pc-connection");
    node.dataset.state = mode;
    var text = {
      connecting: "Connecting…",
      live: "Live",
      reconnecting: "Reconnecting" + (delayMs ? " in " + Math.max(1, Math.round(delayMs / 1000)) + "s" : "…"),
      offline: "Live updates unavailable"
    }[mode];
    node.querySelector(".pc-conn-text").textContent = text;
    node.title = mode === "live" ? "Receiving live updates" : "Not receiving live updates; the list re-reads on reconnect";
  }

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + urls.websocket;
  }

  function connect() {
    if (!("WebSocket" in window)) { setConnection("offline"); return; }
    setConnection(socketState.attempts ? "reconnecting" : "connecting");
    var socket;
    try { socket = new WebSocket(socketUrl()); } catch (e) { scheduleReconnect(); return; }
    socketState.socket = socket;
    socket.addEventListener("open", function () {
      if (socketState.socket !== socket) { return; }
      startPing(socket);
    });
    socket.addEventListener("message", function (event) {
      if (socketState.socket !== socket) { return; }
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "hello") {
        // Live only from the server's hello: a refused socket is accepted and then closed
        // (4401/4403/4404), so "open" alone must not reset the backoff.
        socketState.attempts = 0;
        setConnection("live");
        resync(); // pushes are hints: what happened while disconnected comes from the API
        var server = parseTime(message.server_time);
        if (server !== null) { state.clockSkewMs = server - Date.now(); }
      } else if (message.type === "pong") {
        if (socketState.pongTimer) { clearTimeout(socketState.pongTimer); socketState.pongTimer = null; }
      } else if (message.type === "snapshot") {
        applySnapshot(message.snapshot);
      }
    });
    socket.addEventListener("close", function (event) {
      if (socketState.socket !== socket) { return; }
      socketState.socket = null;
      stopPing();
      if (REFUSED_CODES.indexOf(event.code) !== -1) {
        // Refused (signed out, permission removed): retrying cannot help until a new login.
        setConnection("offline");
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    var delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, socketState.attempts));
    delay = Math.round(delay * (0.8 + Math.random() * 0.4)); // jitter: a restarted server is not hit by every page at once
    socketState.attempts += 1;
    setConnection("reconnecting", delay);
    socketState.retryTimer = setTimeout(function () { socketState.retryTimer = null; connect(); }, delay);
  }

  function startPing(socket) {
    stopPing();
    socketState.pingTimer = setInterval(function () {
      if (socket.readyState !== WebSocket.OPEN) { return; }
      socket.send(JSON.stringify({ type: "ping" }));
      if (!socketState.pongTimer) {
        socketState.pongTimer = setTimeout(function () { socketState.pongTimer = null; socket.close(); }, PONG_TIMEOUT_MS);
      }
    }, PING_INTERVAL_MS);
  }

  function stopPing() {
    if (socketState.pingTimer) { clearInterval(socketState.pingTimer); socketState.pingTimer = null; }
    if (socketState.pongTimer) { clearTimeout(socketState.pongTimer); socketState.pongTimer = null; }
  }

  // --- Ticker (running durations, heartbeat ages) -----------------------------------------

  function tick() {
    var nodes = root.querySelectorAll(".pc-duration[data-running]");
    for (var i = 0; i < nodes.length; i += 1) {
      nodes[i].textContent = formatDuration(nodes[i].dataset.start, null);
    }
    if (state.workersFetchedAt) {
      var elapsed = (Date.now() - state.workersFetchedAt) / 1000;
      var ages = root.querySelectorAll(".pc-age[data-age]");
      for (var k = 0; k < ages.length; k += 1) {
        ages[k].textContent = formatAge(Number(ages[k].dataset.age) + elapsed);
      }
    }
  }

  // --- Start ------------------------------------------------------------------------------

  readFiltersFromLocation();
  setupFilters();
  syncFilterControls();
  setupTable();
  $("pc-bulk").hidden = !config.can_operate;
  renderCounters();
  resync();
  connect();
  setInterval(tick, 1000);
  setInterval(function () { if (document.visibilityState === "visible") { loadWorkers(); } }, WORKERS_REFRESH_MS);
  // For tests and operators' consoles: the page's live state, read-only.
  window.pipelineConsole = {
    state: state,
    connection: function () { return $("pc-connection").dataset.state; }
  };
})();

// The Serving Gateway dashboard: polls the admin API every second (the page in view, and the history of
// each open chart after the last answer's `now`). Every name from the config is set as text, never as markup.
"use strict";
(function () {
  const POLL_MS = 1000;
  const PER_PAGE = 50;
  const state = { search: "", page: 1, pages: 1, span: 900, open: new Map() }; // open: history path -> chart
  const $ = (id) => document.getElementById(id);

  const MAX_PAGE = 1e9; // the API's bound (gateway/dashboard/views.py)
  function pageOf(text) {
    // digits only, within the API's bound; anything else (abc, 99999999999, -3, 1e3) is page 1
    if (!/^[0-9]{1,10}$/.test(text || "")) return 1;
    const n = parseInt(text, 10);
    return n >= 1 && n <= MAX_PAGE ? n : 1;
  }

  function showSpan() {
    $("spanlabel").textContent = state.span >= 120 ? state.span / 60 + " minutes" : state.span / 60 + " minute";
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    state.search = params.get("search") || "";
    state.page = pageOf(params.get("page"));
    const span = parseInt(params.get("span") || "900", 10);
    if ([900, 300, 120, 60].includes(span)) state.span = span;
    $("span").value = String(state.span);
    showSpan();
    for (const path of params.getAll("open")) state.open.set("/admin/dashboard/revisions/" + path + "/history", null);
    $("search").value = state.search;
  }

  function writeHash() {
    const params = new URLSearchParams();
    if (state.search) params.set("search", state.search);
    if (state.page > 1) params.set("page", String(state.page));
    if (state.span !== 900) params.set("span", String(state.span));
    for (const path of state.open.keys()) params.append("open", path.replace("/admin/dashboard/revisions/", "").replace(/\/history$/, ""));
    history.replaceState(null, "", "#" + params.toString());
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  const fmt = {
    num: (v, digits) => (v === null || v === undefined ? "\u2013" : Number(v).toFixed(digits)),
    pct: (v) => (v === null || v === undefined ? "\u2013" : (100 * v).toFixed(1) + "%"),
    secs: (v) => (v === null || v === undefined ? "\u2013" : v < 1 ? (1000 * v).toFixed(1) + " ms" : v.toFixed(2) + " s"),
    time: (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false }),
  };

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) {
      const err = new Error(body.error || response.statusText);
      err.status = response.status;
      throw err;
    }
    return body;
  }

  // -- the table ----------------------------------------------------------------------------------
  function cell(row, cls, text) {
    const td = el("td", text, cls);
    row.appendChild(td);
    return td;
  }

  function renderRows(doc) {
    const tbody = $("rows");
    const rows = [];
    for (const svc of doc.services) {
      svc.revisions.forEach((rev, i) => {
        const tr = el("tr", null, (i === 0 ? "service-first" : "") + (rev.panicking ? " panicking" : ""));
        tr.dataset.revision = svc.namespace + "/" + rev.name;
        cell(tr, "col-service", i === 0 ? svc.namespace + "/" + svc.name : "").title = svc.host;
        cell(tr, "col-revision", rev.name);
        cell(tr, "col-traffic num", rev.percent + "%");
        cell(tr, "col-replicas num", rev.ready + " / " + rev.desired);
        cell(tr, "col-inflight num", rev.in_flight);
        cell(tr, "col-queued num", rev.queued);
        cell(tr, "col-rps num", fmt.num(rev.rps, 1));
        cell(tr, "col-errors num", fmt.pct(rev.error_rate));
        cell(tr, "col-p50 num", fmt.secs(rev.p50));
        cell(tr, "col-p99 num", fmt.secs(rev.p99));
        cell(tr, "col-state", rev.state + (rev.panicking ? " (panic)" : ""));
        const button = el("button", state.open.has(rev.history) ? "hide chart" : "chart", "toggle");
        button.type = "button";
        button.addEventListener("click", () => toggle(rev.history));
        cell(tr, "col-chart").appendChild(button);
        rows.push(tr);
        if (state.open.has(rev.history)) rows.push(chartRow(rev.history, tr.dataset.revision));
      });
    }
    tbody.replaceChildren(...rows);
    $("pageinfo").textContent = "page " + doc.page + " of " + doc.pages + " \u00b7 " + doc.total + " services";
    $("prev").disabled = doc.page <= 1;
    $("next").disabled = doc.page >= doc.pages;
  }

  function toggle(path) {
    if (state.open.has(path)) {
      const chart = state.open.get(path);
      if (chart && chart.plot) chart.plot.destroy();
      state.open.delete(path);
    } else {
      state.open.set(path, null);
    }
    writeHash();
    refresh();
  }

  // -- the charts -----------------------------------------------------------------------------------
  // columns: time desired ready stable panic panicking queued in_flight rps error_rate p50 p99
  const COL = { time: 0, desired: 1, ready: 2, stable: 3, panic: 4, panicking: 5, queued: 6 };

  function chartRow(path, name) {
    let chart = state.open.get(path);
    if (!chart) {
      chart = { rows: [], events: [], now: null, box: el("div", null, "chart"), list: el("ul", null, "events"), plot: null };
      chart.box.dataset.revision = name;
      chart.list.dataset.revision = name;
      state.open.set(path, chart);
    }
    const tr = el("tr", null, "chart-row");
    const td = el("td", null, "chart-cell");
    td.colSpan = 12;
    td.appendChild(chart.box);
    td.appendChild(chart.list);
    tr.appendChild(td);
    return tr;
  }

  function seriesData(chart) {
    const rows = chart.rows.slice();
    if (rows.length && chart.now !== null) rows.push([chart.now, ...rows[rows.length - 1].slice(1)]); // holds until now
    const out = [[], [], [], [], [], []];
    for (const r of rows) {
      out[0].push(r[COL.time]);
      out[1].push(r[COL.ready]);
      out[2].push(r[COL.desired]);
      out[3].push(r[COL.stable]);
      out[4].push(r[COL.panic]);
      out[5].push(r[COL.queued]);
    }
    return out;
  }

  function drawMarks(chart, u) {
    const ctx = u.ctx;
    const top = u.bbox.top;
    const height = u.bbox.height;
    const x = (t) => Math.round(u.valToPos(t, "x", true));
    ctx.save();
    ctx.fillStyle = "rgba(220, 50, 47, 0.12)"; // panic periods
    let from = null;
    const rows = chart.rows;
    for (let i = 0; i < rows.length; i++) {
      if (rows[i][COL.panicking] && from === null) from = rows[i][COL.time];
      if (!rows[i][COL.panicking] && from !== null) {
        ctx.fillRect(x(from), top, x(rows[i][COL.time]) - x(from), height);
        from = null;
      }
    }
    if (from !== null && chart.now !== null) ctx.fillRect(x(from), top, x(chart.now) - x(from), height);
    ctx.strokeStyle = "#6c3bb8"; // scale events
    ctx.fillStyle = "#6c3bb8";
    ctx.setLineDash([4, 3]);
    ctx.font = 11 * devicePixelRatio + "px system-ui, sans-serif";
    let n = 0;
    for (const ev of chart.events) {
      if (ev.kind !== "scale") continue;
      const px = x(ev.time);
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px, top + height);
      ctx.stroke();
      // the decision at the line (staggered, so close ones stay legible); the reason in the list below
      ctx.fillText(ev.what.replace("->", "\u2192"), px + 3, top + (12 + 13 * (n++ % 5)) * devicePixelRatio);
    }
    ctx.restore();
  }

  function renderChart(chart) {
    const data = seriesData(chart);
    const width = Math.max(400, chart.box.clientWidth || 900);
    if (!chart.plot && window.uPlot) {
      const stepped = uPlot.paths.stepped({ align: 1 });
      chart.plot = new uPlot(
        {
          width: width,
          height: 220,
          scales: { x: { time: true, range: (u, min, max) => [max - state.span, max] }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
          series: [
            {},
            { label: "ready", stroke: "#1a7f37", width: 2, paths: stepped },
            { label: "desired", stroke: "#0b5cad", width: 2, dash: [6, 4], paths: stepped },
            { label: "stable conc.", stroke: "#d98e04", width: 1.5 },
            { label: "panic conc.", stroke: "#dc322f", width: 1 },
            { label: "queued", stroke: "#6e7781", width: 1, paths: stepped },
          ],
          hooks: { draw: [(u) => drawMarks(chart, u)] },
        },
        data,
        chart.box
      );
    } else if (chart.plot) {
      chart.plot.setData(data);
    }
    const items = chart.events.slice().reverse().map((ev) => {
      const what = ev.kind === "scale" ? "autoscaler: scale " + ev.what : "panic mode " + ev.what;
      const li = el("li", fmt.time(ev.time) + " " + what + " (" + ev.why + ")", ev.kind);
      li.dataset.kind = ev.kind;
      return li;
    });
    chart.list.replaceChildren(...items);
  }

  function closeChart(path, chart) {
    // its revision is gone (a reload removed it): the chart closes itself and leaves the address
    if (chart.plot) chart.plot.destroy();
    const row = chart.box.closest("tr");
    if (row) row.remove();
    state.open.delete(path);
    writeHash();
  }

  async function pollOneChart(path, chart) {
    // each chart fails alone: a missing revision closes it, another error is reported, the rest go on
    try {
      await pollChart(path, chart);
      return null;
    } catch (err) {
      if (err.status === 404) {
        closeChart(path, chart);
        return null;
      }
      return "chart " + (chart.box.dataset.revision || path) + ": " + err.message;
    }
  }

  async function pollChart(path, chart) {
    const url = path + (chart.now !== null ? "?since=" + chart.now : "");
    const doc = await getJSON(url);
    if (chart.now === null) {
      chart.rows = doc.rows;
      chart.events = doc.events;
    } else {
      chart.rows.push(...doc.rows);
      chart.events.push(...doc.events);
    }
    chart.now = doc.now;
    const start = doc.now - doc.window;
    while (chart.rows.length >= 2 && chart.rows[1][COL.time] <= start) chart.rows.shift(); // keep the value at the start
    while (chart.events.length && chart.events[0].time <= start) chart.events.shift();
    renderChart(chart);
  }

  // -- polling ----------------------------------------------------------------------------------------
  let busy = false;
  let reset = false; // the services list refused the page once (400) and it was reset to page 1
  async function services() {
    const q = new URLSearchParams({ search: state.search, page: String(state.page), per_page: String(PER_PAGE) });
    try {
      const doc = await getJSON("/admin/dashboard/services?" + q.toString());
      reset = false;
      return doc;
    } catch (err) {
      if (err.status !== 400 || reset || state.page === 1) throw err;
      reset = true; // once: a page the API refuses falls back to page 1 rather than staying broken
      state.page = 1;
      writeHash();
      return services();
    }
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const doc = await services();
      state.pages = doc.pages;
      if (state.page > doc.pages) {
        state.page = doc.pages;
        writeHash();
      }
      renderRows(doc);
      const open = Array.from(state.open.entries()).filter(([, c]) => c);
      const failed = (await Promise.all(open.map(([p, c]) => pollOneChart(p, c)))).filter((m) => m);
      $("status").textContent = failed.length ? "error: " + failed.join("; ") : "updated " + fmt.time(Date.now() / 1000);
    } catch (err) {
      $("status").textContent = "error: " + err.message;
    } finally {
      busy = false;
    }
  }

  let typing = null;
  $("search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.search = $("search").value.trim();
      state.page = 1;
      writeHash();
      refresh();
    }, 250);
  });
  $("span").addEventListener("change", () => {
    state.span = parseInt($("span").value, 10);
    showSpan();
    writeHash();
    for (const chart of state.open.values()) if (chart && chart.plot) chart.plot.setData(seriesData(chart));
  });
  $("prev").addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    writeHash();
    refresh();
  });
  $("next").addEventListener("click", () => {
    state.page = Math.min(state.pages, state.page + 1);
    writeHash();
    refresh();
  });

  readHash();
  refresh();
  setInterval(refresh, POLL_MS);
})();

// katuna's dashboard: a little script per page, no build step. Charts are Optuna's figures
// (plotly JSON from the server) drawn by plotly.js.
"use strict";

const katuna = (() => {
  const REFRESH_MS = 3000;
  const IDLE_MS = 10000;
  const LOG_POLL_MS = 1000;
  const LOG_KEEP = 1024 * 1024;
  const STUDY_REFRESH_MS = 5000;
  const CHART_TRIES = 4;
  const RETRY_MAX_S = 30;
  const NOTICE_KEY = "katuna-notice";
  const ENDED = ["completed", "failed", "stopped"];  // a study's statuses once it ended
  // How every chart is drawn. plotly.js offers a "Share chart..." button by default, which
  // uploads the chart (the study's parameters and values) to Plotly Cloud: a study's data goes
  // nowhere but this page, so the button is not shown.
  const PLOT_CONFIG = {responsive: true, displaylogo: false, showSendToCloud: false};

  // Writes carry the session's CSRF token (from the page's meta tag) and a JSON content type.
  function writeHeaders(type = "application/json") {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? {"Content-Type": type, "X-CSRF-Token": meta.content} : {"Content-Type": type};
  }

  // A 401 from a data path means the session ended (expired, or logged out in another tab):
  // the whole window reloads, which the service answers with its login page, the page as next.
  // A 304 (to a conditional request: nothing changed) is an answer too.
  async function fetchData(url, accept, headers = {}) {
    const response = await fetch(url, {credentials: "same-origin", cache: "no-store", headers: {Accept: accept, ...headers}});
    if (response.status === 401) location.reload();
    if (!response.ok && response.status !== 304) {
      throw Object.assign(new Error(`${response.status} ${response.statusText}`),
        {status: response.status, retryAfter: Number(response.headers.get("Retry-After")) || 0});
    }
    return response;
  }

  async function getJSON(url) {
    return (await fetchData(url, "application/json")).json();
  }

  // A study as the page follows it: its last answer is kept with its ETag, sent back as
  // If-None-Match, so a study that did not change since is a 304 the service answers from its
  // version alone, and the kept answer is used again.
  const studiesSeen = new Map();
  async function getStudy(url) {
    const seen = studiesSeen.get(url);
    const response = await fetchData(url, "application/json", seen ? {"If-None-Match": seen.etag} : {});
    if (response.status === 304 && seen) return seen.study;
    const study = await response.json();
    const etag = response.headers.get("ETag");
    if (etag) studiesSeen.set(url, {etag, study});
    else studiesSeen.delete(url);
    return study;
  }

  // Whether a failed fetch may succeed if asked again: no answer (a restarting worker), 502,
  // 503 (a busy database) or 504. Anything else (a 404: the study was deleted) will not.
  function transient(error) {
    return error.status === undefined || [502, 503, 504].includes(error.status);
  }

  // How long to wait before asking again after ``error``: its Retry-After (2 s without one),
  // RETRY_MAX_S at most.
  function retryDelay(error) {
    return 1000 * Math.min(error.retryAfter || 2, RETRY_MAX_S);
  }

  // A write from the page (the session's CSRF token with it): the answer's body when it is
  // taken, else an Error whose message says why (as the service words it), with the answer
  // and its status. Nothing is reloaded here: a form's text stays for another try.
  async function write(url, type = "application/json", body = undefined, method = "POST") {
    let response;
    try {
      response = await fetch(url, {method, credentials: "same-origin", headers: writeHeaders(type), body});
    } catch (error) {
      throw new Error(`the service could not be reached (${error.message})`);
    }
    const answer = await response.json().catch(() => ({}));
    if (response.ok) return answer;
    const message = response.status === 401 ? "the session has ended: log in again, then try again"
      : answer.message || `${response.status} ${response.statusText}`;
    throw Object.assign(new Error(message), {status: response.status, answer});
  }

  // A server-rendered part of the page, fetched again into its holder (left as it is when the
  // service answers a conditional request, ``headers``, with 304: unchanged).
  // The focused link (or element with an id) inside is focused again in the new content, so a
  // keyboard or screen-reader user keeps their place while a table refreshes; and each box that
  // scrolls on its own (one with an id) is scrolled as far down and across as it was.
  async function refill(holder, headers = {}) {
    const response = await fetchData(holder.dataset.src, "text/html", headers);
    if (response.status === 304) return;
    const text = await response.text();
    const focused = holder.contains(document.activeElement) ? document.activeElement : null;
    const key = focused && (focused.getAttribute("href") || focused.id);
    const scrolled = [...holder.querySelectorAll(".scroll[id]")].map((box) => [box.id, box.scrollTop, box.scrollLeft]);
    holder.innerHTML = text;
    for (const [id, top, left] of scrolled) {
      const box = document.getElementById(id);
      if (box) box.scrollTo(left, top);
    }
    if (key) {
      const again = [...holder.querySelectorAll("a[href], [id]")].find((el) => (el.getAttribute("href") || el.id) === key);
      if (again) again.focus();
    }
  }

  // Whether the parts of the page that update themselves may do so now: a person can pause them
  // with the page's "update live" box (#live), as content updating by itself must let them, so a
  // screen reader's place in a table, or a person reading it, is not lost to a refresh.
  function live() {
    const box = document.getElementById("live");
    return !box || box.checked;
  }

  // A server-rendered part of the page fetched again while the element ``flag`` in it says
  // data-running="true", the next fetch timed from the end of the last, so a slow answer never
  // has others piling up behind it. The last fetch is the one that says it no longer runs. Paused
  // (:func:`live`), nothing is fetched until it is resumed. A study deleted meanwhile (its part
  // answers 404) is fetched no more: the page says so (:func:`partGone`), keeping what it shows.
  function refillWhileRunning(holder, flag, gone) {
    const tick = async () => {
      const marker = document.getElementById(flag);
      if (!marker || marker.dataset.running !== "true") return;
      if (live()) {
        try {
          await refill(holder);
        } catch (error) {
          if (error.status === 404) return partGone(holder, gone);
        }
      }
      setTimeout(tick, REFRESH_MS);
    };
    setTimeout(tick, REFRESH_MS);
  }

  // What a part whose study was deleted while it was followed says, above what it still shows,
  // with a link back to the studies list; its "update live" box goes, there being nothing left
  // to follow.
  function partGone(holder, words) {
    const said = Object.assign(document.createElement("p"), {id: "study-gone", className: "problem", textContent: words});
    const list = Object.assign(document.createElement("a"),
      {id: "back-to-studies", href: document.querySelector("header .brand").href, textContent: "back to the studies"});
    said.append(" ", list);
    said.setAttribute("role", "alert");
    holder.before(said);
    const box = document.getElementById("live");
    if (box) box.closest("label").remove();
  }

  // Studies list: the table fetched again every REFRESH_MS while any study runs; while none
  // does, asked every IDLE_MS whether it changed (a study stored or deleted by the CLI or the
  // API meanwhile): a conditional request of the version it shows, which the service answers
  // 304, reading no study's trials, while nothing changed. Each fetch is timed from the end of
  // the last, so a slow answer never has others piling up behind it. A hidden tab, or a list
  // paused (:func:`live`), asks nothing, and asks at once when it is shown or resumed.
  function studiesPage() {
    showNotice();
    const holder = document.getElementById("studies");
    if (!holder) return;
    let timer = null;
    let asking = false;
    const table = () => document.getElementById("studies-table");
    const paused = () => document.visibilityState === "hidden" || !live();
    const schedule = () => {
      clearTimeout(timer);
      timer = paused() ? null
        : setTimeout(tick, table().dataset.running === "true" ? REFRESH_MS : IDLE_MS);
    };
    const tick = async () => {
      timer = null;
      asking = true;
      const marker = table();
      const unless = marker.dataset.running === "true" ? {} : {"If-None-Match": `"${marker.dataset.version}"`};
      await refill(holder, unless).catch(() => null);
      asking = false;
      schedule();
    };
    const resume = () => {
      if (asking) return;
      if (paused()) {
        clearTimeout(timer);
        timer = null;
      } else if (timer === null) {
        tick();
      }
    };
    document.addEventListener("visibilitychange", resume);
    const box = document.getElementById("live");
    if (box) box.addEventListener("change", resume);
    schedule();
  }

  // Trial table: its rows, count and pager refreshed while the study runs, with the filters,
  // sort and page the page was asked for.
  function trialsPage() {
    refillWhileRunning(document.getElementById("trials"), "trial-count",
      "This study was deleted: the table below shows its trials as they were when it was.");
  }

  // Study page: each chart is fetched on its own, so the page shows before the slow ones.
  function studyPage() {
    const charts = document.querySelector(".charts");
    const template = charts.dataset.plotUrl;
    const objective = document.getElementById("objective");
    const pair = document.getElementById("plot-pair");
    const url = (div) => {
      const params = new URLSearchParams();
      if (objective) params.set("objective", objective.value);
      if (div === pair) {
        params.set("params", [value("param-a"), value("param-b")].join(","));
      }
      return template.replace("KIND", div.dataset.kind) + "?" + params;
    };
    // What the charts are drawn for, kept in the page's address (replacing it, adding no history
    // entry), which the service reads back: a reload, or the address sent on, shows them so.
    const remember = () => {
      const address = new URL(location.href);
      if (objective) address.searchParams.set("objective", objective.value);
      address.searchParams.set("params", [value("param-a"), value("param-b")].join(","));
      address.searchParams.set("pair", pair.dataset.kind);
      history.replaceState(history.state, "", address);
      keepChoices(address.searchParams, document.getElementById("best-trials"));
    };
    const drawAll = () => charts.querySelectorAll(".plot").forEach((div) => draw(div, url(div)));
    drawAll();
    if (objective) objective.addEventListener("change", () => remember() || drawAll());
    const redrawPair = () => {
      const checked = document.querySelector("input[name=pair-kind]:checked");
      pair.dataset.kind = checked ? checked.value : "slice";
      remember();
      draw(pair, url(pair));
    };
    document.querySelectorAll("#param-a, #param-b, input[name=pair-kind]")
      .forEach((el) => el.addEventListener("change", redrawPair));
    const redraw = (div) => draw(div, url(div));
    const ended = (study) => studyEnded(charts, redraw, study, ended);
    const actions = document.getElementById("study-actions");
    actions.addEventListener("click", (event) => {
      const stop = event.target.closest("#stop-study");
      if (stop && !stop.disabled) stopStudy(stop, ended);
    });
    deleteStudy(document.getElementById("delete-study"), document.getElementById("delete-dialog"));
    if (charts.dataset.running === "true") followStudy(charts, redraw, ended);
    else awaitRestart(charts, redraw, ended);
  }

  // The chart choices in the page's address, kept by the links of the best trials' table that
  // open this page again (a page of the front, "list all") and by the table fetched again while
  // the study runs: paging the front shows the charts picked.
  function keepChoices(chosen, best) {
    const withChoices = (text) => {
      const link = new URL(text, location.href);
      for (const name of ["objective", "params", "pair"]) {
        if (chosen.has(name)) link.searchParams.set(name, chosen.get(name));
      }
      return link.pathname + link.search + link.hash;
    };
    best.dataset.src = withChoices(best.dataset.src);
    best.querySelectorAll("a[href]").forEach((a) => {
      if (new URL(a.href, location.href).pathname === location.pathname) a.setAttribute("href", withChoices(a.href));
    });
  }

  // Delete, once confirmed in a dialog naming the study (Cancel, which has the focus, or
  // Escape keeps it): the API's own DELETE /studies/{name}, which stops a running study first.
  // Deleted (or found deleted already), the studies list opens with a notice saying so; a delete
  // the service refuses (a study that follows a Kubernetes resource the cluster still holds, a
  // stale CSRF token, a busy database) is said beside the buttons, and the page stays, the focus
  // given back to Delete… (disabled while it was sent, it lost it).
  function deleteStudy(button, dialog) {
    const problem = document.getElementById("delete-problem");
    button.addEventListener("click", () => {
      document.getElementById("delete-running").hidden = document.getElementById("study-status").textContent !== "running";
      dialog.returnValue = "";
      dialog.showModal();
    });
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "delete") return;
      const name = JSON.stringify(button.dataset.name);
      problem.hidden = true;
      button.disabled = true;
      try {
        await write(button.dataset.url, "application/json", undefined, "DELETE");
        leaveWith(button.dataset.list, `Deleted the study ${name}, with its trials.`);
      } catch (error) {
        if (error.status === 401) return location.reload();  // the login page, which returns here
        if (error.status === 404) return leaveWith(button.dataset.list, `The study ${name} was deleted already.`);
        problem.textContent = `The study was not deleted: ${error.message}`;
        problem.hidden = false;
        button.disabled = false;
        if (document.activeElement === document.body) button.focus();  // lost as it was disabled
      }
    });
  }

  // Open ``url`` (a dashboard page), which shows ``notice`` once (:func:`showNotice`).
  function leaveWith(url, notice) {
    sessionStorage.setItem(NOTICE_KEY, notice);
    location.assign(url);
  }

  // The notice the last page left (:func:`leaveWith`), shown in the page's #notice, then forgotten.
  function showNotice() {
    const notice = sessionStorage.getItem(NOTICE_KEY);
    const box = document.getElementById("notice");
    if (notice === null || !box) return;
    sessionStorage.removeItem(NOTICE_KEY);
    box.textContent = notice;
    box.hidden = false;
  }

  // Stop (heard on the actions beside it, so a Stop their refill brings back works too), once
  // confirmed (a study whose trials run elsewhere is stopped in this database only, which its
  // confirmation says): the page shows the stopped study the service answers with, in place
  // (``ended``), so a chart's zoom stays. A stop the service refuses (a stale CSRF token, a
  // study deleted meanwhile, a busy database) is said beside the button, which stays for
  // another try. The focus on Stop, which goes, moves to the study's heading, which says the study
  // stopped (a keyboard's place kept, the stop read aloud); on a Stop refused it is given back.
  async function stopStudy(stop, ended) {
    const focused = document.activeElement === stop;
    if (!confirm(stop.dataset.confirm || "Stop this study? Running trials are stopped.")) return;
    const problem = document.getElementById("stop-problem");
    problem.hidden = true;
    stop.disabled = true;
    try {
      ended(await write(stop.dataset.url));
      if (focused) document.getElementById("study-heading").focus();
    } catch (error) {
      if (error.status === 401) return location.reload();  // the login page, which returns here
      problem.textContent = `The study was not stopped: ${error.message}`;
      problem.hidden = false;
      stop.disabled = false;
      if (focused) stop.focus();
    }
  }

  // While the study runs: counts and status from the API; its node-hours at each tick, where it
  // has a pool (they grow while nodes run, and nodes come and go); the best trials and every
  // chart again as trials finish (each updated in place by :func:`draw`, which keeps a zoom, the
  // ranges brushed on the parallel coordinates and the axes hidden there; a chart the service
  // says is unchanged, 304 to its ETag, is not drawn again); once it ends, ``ended``. A study deleted meanwhile (404) is said to be, and no longer followed; other
  // failures are tried again at the next tick. A study the page ended (its Stop) is not followed;
  // while the page is paused (:func:`live`) nothing is asked.
  function followStudy(charts, redraw, ended) {
    const best = document.getElementById("best-trials");
    const nodeHours = document.getElementById("node-hours");
    let finished = Number(charts.dataset.finished);
    const tick = async () => {
      if (charts.dataset.running !== "true") return;
      if (!live()) return setTimeout(tick, STUDY_REFRESH_MS);
      let study = null;
      try {
        study = await getStudy(charts.dataset.studyUrl);
      } catch (error) {
        if (error.status === 404) return studyDeleted(charts);
      }
      if (charts.dataset.running !== "true") return;
      if (study) {
        showCounts(study);
        const c = study.counts;
        const done = c.complete + c.failed + c.pruned + c.stopped;
        if (study.status !== "running") return ended(study);
        if (nodeHours) refill(nodeHours).catch(() => null);
        if (done !== finished) {
          refill(best).catch(() => null);
          charts.querySelectorAll(".plot").forEach(redraw);
        }
        finished = done;
      }
      setTimeout(tick, STUDY_REFRESH_MS);
    };
    setTimeout(tick, STUDY_REFRESH_MS);
  }

  // The study ended, seen by the page or stopped from it: its counts and status as ``study``
  // says, its node-hours, the best trials and every chart once more, and the page's actions as
  // a page loaded now would show them (no Stop; Restart… where the study can restart). It is
  // followed again only if it restarts.
  async function studyEnded(charts, redraw, study, ended) {
    charts.dataset.running = "false";
    charts.dataset.completedAt = study.completedAt;
    showCounts(study);
    const stop = document.getElementById("stop-study");
    if (stop) stop.remove();
    refill(document.getElementById("study-actions")).catch(() => null);
    const nodeHours = document.getElementById("node-hours");
    if (nodeHours) refill(nodeHours).catch(() => null);
    await refill(document.getElementById("best-trials")).catch(() => null);
    charts.querySelectorAll(".plot").forEach(redraw);
    awaitRestart(charts, redraw, ended);
  }

  // An ended study the page offers to restart (its Restart…) may be restarted elsewhere (another
  // tab, the CLI, the API): while the page is shown it asks every IDLE_MS, and once the study
  // runs again shows it so and follows it (one that ran and ended again between two asks is
  // shown ended anew). A study that cannot restart is asked nothing; one deleted meanwhile is
  // said to be.
  function awaitRestart(charts, redraw, ended) {
    const tick = async () => {
      if (charts.dataset.running === "true" || !document.getElementById("restart-study")) return;
      let study = null;
      try {
        if (document.visibilityState !== "hidden") study = await getStudy(charts.dataset.studyUrl);
      } catch (error) {
        if (error.status === 404) return studyDeleted(charts);
      }
      if (study && study.status !== "running" && study.completedAt !== Number(charts.dataset.completedAt)) {
        return ended(study);  // restarted, and ended again since the last ask
      }
      if (study && study.status === "running") {
        charts.dataset.running = "true";
        showCounts(study);
        refill(document.getElementById("study-actions")).catch(() => null);
        return followStudy(charts, redraw, ended);
      }
      setTimeout(tick, IDLE_MS);
    };
    setTimeout(tick, IDLE_MS);
  }

  // The study's page stays, saying the study was deleted; there is nothing left to stop or follow.
  function studyDeleted(charts) {
    for (const id of ["stop-study", "delete-study"]) {
      const button = document.getElementById(id);
      if (button) button.remove();
    }
    const status = document.getElementById("study-status");
    status.textContent = "deleted";
    status.className = "status deleted";
    document.getElementById("stop-reason").textContent = "this study was deleted: what this page shows is all that is left of it";
    charts.dataset.running = "false";
  }

  function showCounts(study) {
    const c = study.counts;
    document.getElementById("trial-counts").textContent =
      `${study.trials} of ${study.maxTrials || "∞"}: ${c.complete} complete, ${c.failed} failed, ` +
      `${c.pruned} pruned, ${c.stopped ? `${c.stopped} stopped, ` : ""}${c.running} running, ${c.waiting} waiting`;
    const status = document.getElementById("study-status");
    status.textContent = study.status;
    status.className = `status ${study.status}`;
    document.getElementById("stop-reason").textContent = study.reason || study.status;
    const span = document.getElementById("study-span");
    if (span && study.startedAt) {
      span.textContent = duration(Math.max(0, (study.completedAt || Date.now() / 1000) - study.startedAt));
    }
  }

  // A duration as the server writes one (its ``span`` filter): 1.9s, 3m 05s, 2h 04m.
  function duration(seconds) {
    const whole = Math.round(seconds);
    const hours = Math.floor(whole / 3600), minutes = Math.floor(whole / 60) % 60, secs = whole % 60;
    const two = (n) => String(n).padStart(2, "0");
    if (hours) return `${hours}h ${two(minutes)}m`;
    return minutes ? `${minutes}m ${two(secs)}s` : `${seconds.toFixed(1)}s`;
  }

  function value(id) {
    const el = document.getElementById(id);
    return el ? el.value : "";
  }

  // A chart asked while the service is briefly unable to answer (:func:`transient`) is asked
  // again after the Retry-After it was given, up to CHART_TRIES times, before the page says it
  // could not be loaded. A chart asked again from the address it was drawn from names the ETag
  // it was drawn from, which the service answers 304 while the chart is unchanged.
  async function chartAnswer(div, url) {
    const unless = div.dataset.etag && div.dataset.drawn === url ? {"If-None-Match": div.dataset.etag} : {};
    for (let tries = 1; ; tries++) {
      try {
        return await fetchData(url, "application/json", unless);
      } catch (error) {
        if (!transient(error) || tries >= CHART_TRIES) throw error;
        await new Promise((resolve) => setTimeout(resolve, retryDelay(error)));
      }
    }
  }

  // A chart drawn already is updated in place (Plotly.react), not drawn anew: a running study's
  // charts are redrawn as its trials end, and each new plot of a parallel-coordinates chart
  // builds a WebGL context (well over a second of CPU where the browser renders in software). The
  // view a person zoomed or panned to stays while the chart is the same one (``uirevision``: its
  // address, which names the objective and the parameters drawn). A chart the service says is
  // unchanged (304) stays as it is drawn. A screen reader reads the chart's place by its label and
  // the text after it, which says where its data is as text: a message or a failure in its place
  // is said in its label too.
  async function draw(div, url) {
    div.classList.add("loading");
    const label = div.dataset.label || (div.dataset.label = div.getAttribute("aria-label") || "");
    try {
      const response = await chartAnswer(div, url);
      if (response.status === 304) return;
      const figure = await response.json();
      if (figure.message) {
        clearChart(div);
        div.dataset.message = figure.message;
        div.appendChild(Object.assign(document.createElement("p"), {className: "muted", textContent: figure.message}));
        div.setAttribute("aria-label", `${label}: ${figure.message}`);
      } else {
        if (!div.data) clearChart(div);  // a message or a failure is there, not a plot
        delete div.dataset.message;
        if (div.dataset.kind === "parallel") keepAxisChoices(div, figure);
        figure.layout.uirevision = url;
        if (div.dataset.kind === "pareto") barsBelowWhenNarrow(div, figure);
        await Plotly.react(div, figure.data, figure.layout, PLOT_CONFIG);
        if (div.dataset.kind === "parallel") axisToggles(div);
        if (div.dataset.kind === "importance") listImportances(figure);
        div.setAttribute("aria-label", label);
      }
      Object.assign(div.dataset, {drawn: url, etag: response.headers.get("ETag") || ""});
    } catch (error) {
      clearChart(div);
      div.textContent = `Could not load the chart: ${error.message}`;
      div.setAttribute("aria-label", `${label}: ${div.textContent}`);
    } finally {
      div.classList.remove("loading");
      div.dataset.ready = "true";
    }
  }

  // A chart narrower than NARROW_CHART_PX shows its colour bars (the Pareto front's two: the
  // trials' and the front's) below its points, thin, each across the chart under its title, one
  // under the other, and keeps narrow margins (the axes' labels widen them as they need): beside
  // the points, where plotly puts them, the bars took half a phone's width.
  const NARROW_CHART_PX = 480;
  function barsBelowWhenNarrow(div, figure) {
    if (div.clientWidth >= NARROW_CHART_PX) return;
    figure.layout.margin = {l: 10, r: 10, t: 10, b: 10};
    figure.data.filter((trace) => trace.marker?.colorbar).forEach((trace, i) => {
      const bar = trace.marker.colorbar;
      Object.assign(bar, {orientation: "h", x: 0.5, xanchor: "center", xpad: 0, len: 1, thickness: 10,
        y: -0.3 - 0.3 * i, yanchor: "top", ypad: 0, title: {...bar.title, side: "top"}});
    });
  }

  // The importance chart's bars as the text after it, most important first, as the chart labels
  // them: its values are shown nowhere else, and a screen reader reads no bar of the drawing.
  function listImportances(figure) {
    const text = document.getElementById("plot-importance-text");
    const bars = figure.data.filter((trace) => trace.type === "bar" && trace.y);
    if (!text || !bars.length) return;
    text.textContent = "As text: " + bars.map((bar) => {
      const shown = bar.y.map((name, i) => `${chartText(String(name))} ${bar.text ? bar.text[i] : bar.x[i]}`).reverse();
      return `each parameter's importance${bar.name ? ` for ${chartText(bar.name)}` : ""}, most important first: ${shown.join(", ")}.`;
    }).join(" ");
  }

  // An empty chart's place, its plot (if any) let go of (Plotly.purge deletes its ``data`` too),
  // and the ETag of what it drew.
  function clearChart(div) {
    Plotly.purge(div);
    div.innerHTML = "";
    delete div.dataset.etag;
  }

  // A chart's label as text: the service writes <, > and & in it as entities, which plotly
  // shows as those characters (it reads the rest as markup). Parsed in a document of its own,
  // which runs nothing and loads nothing.
  function chartText(label) {
    return new DOMParser().parseFromString(label, "text/html").documentElement.textContent;
  }

  // What a person chose on the axes of the parallel coordinates drawn, the ranges they brushed
  // and the axes they hid (:func:`axisToggles`), stays in the figure that replaces them.
  function keepAxisChoices(div, figure) {
    const chosen = new Map((div.data?.[0]?.dimensions || []).map((d) => [d.label, d]));
    (figure.data[0]?.dimensions || []).forEach((dimension) => {
      const before = chosen.get(dimension.label);
      if (before?.visible === false) dimension.visible = false;
      if (before?.constraintrange) dimension.constraintrange = before.constraintrange;
    });
  }

  // Parallel coordinates: one checkbox per axis; plotly keeps the brushed ranges of the others.
  function axisToggles(div) {
    const box = document.getElementById("parallel-axes");
    const trace = div.data[0];
    if (!box || !trace || !trace.dimensions) return;
    box.innerHTML = "";
    trace.dimensions.forEach((dimension, index) => {
      const label = document.createElement("label");
      const input = Object.assign(document.createElement("input"), {type: "checkbox", checked: dimension.visible !== false});
      const text = chartText(dimension.label);
      input.dataset.axis = text;
      input.addEventListener("change", () => {
        div.data[0].dimensions[index].visible = input.checked;
        Plotly.react(div, div.data, div.layout, PLOT_CONFIG);
      });
      label.append(input, " " + text);
      box.appendChild(label);
    });
  }

  // Trial page: the log from an offset, polled while the trial runs. The log served is the
  // current attempt's: when the trial is run again (preempted, retried), the rest of the
  // attempt shown is read, then a separator, then the new attempt's log from its beginning.
  // A poll the service cannot answer for now (:func:`transient`: a restarting worker, a busy
  // database, an API server away) is asked again after its Retry-After, the heading saying so;
  // the log stops being followed only for an answer that will not change (a trial deleted).
  // Paused (:func:`live`), the log is left as it is, and followed on from there once resumed.
  function trialPage() {
    const log = document.getElementById("log");
    const status = document.getElementById("log-status");
    const following = status.textContent;
    let attempt = Number(log.dataset.attempt);
    let offset = -1;
    // Where the log shown ends, as the service marks it on a cluster: the next poll reads only
    // the lines written since, not the pod's log up to the offset (null: read from the offset).
    let mark = null;
    const read = (at, from) => getJSON(`${log.dataset.src}?offset=${from}${at ? `&attempt=${at}` : ""}` +
      (mark && from >= 0 ? `&mark=${encodeURIComponent(mark)}` : ""));
    const note = (at, words) => {
      const link = Object.assign(document.createElement("a"),
        {href: `${log.dataset.full}?attempt=${at}`, className: "muted"});
      link.textContent = `… ${words} not shown (open the log)\n`;
      return link;
    };
    // The page holds the latest LOG_KEEP characters at most, in whole chunks: a trial printing
    // megabytes a second would otherwise fill it without end. The note links the log of the
    // attempt whose output it replaces: the one before the first separator left, if any.
    const trim = () => {
      let trimmed = false;
      while (log.childNodes.length > 1 && log.textContent.length > LOG_KEEP) {
        log.firstChild.remove();
        trimmed = true;
      }
      const separator = log.querySelector(".attempt-separator");
      if (trimmed) log.prepend(note(separator ? separator.dataset.before : attempt, "earlier output"));
    };
    // The service sends each chunk's lines as a terminal shows them (a progress bar redrawn with
    // carriage returns at its last state); what a chunk cannot know is said with a "\r": one that
    // begins it overwrites the line the page shows last, and one that ends it has the next text
    // overwrite its last line, unless that text begins a new line. A lone "\r" erases nothing.
    let back = false;
    const write = (text) => {
      const rest = text.endsWith("\r") ? text.slice(0, -1) : text;
      if (rest.startsWith("\r") || (back && rest && !rest.startsWith("\n"))) eraseLine(log);
      back = text.endsWith("\r") || (back && !rest);
      log.append(rest.replace(/^\r/, ""));
    };
    const show = (chunk) => {
      if (chunk.skipped) log.append(note(chunk.attempt, `${chunk.skipped} earlier bytes`));
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      write(chunk.text);
      offset = chunk.offset;
      mark = chunk.mark || null;
      trim();
      if (atBottom) log.scrollTop = log.scrollHeight;
    };
    // The next chunk of attempt ``at`` (the current one when null); more than a chunk behind, the
    // attempt's last chunk in place of all that is shown, as the first read shows it, so the
    // page keeps up however fast the trial prints.
    const next = async (at) => {
      const chunk = await read(at, offset);
      if (!chunk.more || offset < 0 || chunk.attempt !== attempt) return chunk;
      log.replaceChildren();
      mark = null;
      return read(chunk.attempt, -1);
    };
    const switchTo = async (to) => {
      if (offset >= 0) {
        try {
          let chunk;
          do {
            chunk = await next(attempt);
            show(chunk);
          } while (chunk.more);
        } catch (error) {
          log.append(`\n(the rest of attempt ${attempt}'s log could not be read: ${error.message})`);
        }
        const separator = Object.assign(document.createElement("span"), {className: "attempt-separator"});
        separator.dataset.attempt = to;
        separator.dataset.before = attempt;
        separator.textContent = `\n——— attempt ${to}: the trial was run again; its log from the beginning ———\n`;
        log.append(separator);
        offset = 0;
        mark = null;
      }
      attempt = to;
      showAttempt(log, attempt);
    };
    const poll = async () => {
      if (!live()) {
        status.textContent = "paused";
        return setTimeout(poll, LOG_POLL_MS);
      }
      let chunk;
      try {
        chunk = await next(null);
        if (chunk.attempt !== attempt) {
          const fresh = offset < 0;
          await switchTo(chunk.attempt);
          if (!fresh) return poll();
        }
      } catch (error) {
        if (!transient(error)) {
          status.textContent = error.status === 404
            ? "log unavailable: this trial's study was deleted (or the trial with it)"
            : `log unavailable: ${error.message}`;
          if (error.status === 404) {
            partGone(log, "This trial's study was deleted (or the trial with it): the page shows the trial as it was.");
          }
          return;
        }
        status.textContent = `log unavailable for now (${error.message}): asking again…`;
        setTimeout(poll, retryDelay(error));
        return;
      }
      if (status.textContent !== following) status.textContent = following;
      show(chunk);
      showTrial(chunk);
      if (chunk.more) return poll();
      if (chunk.running) {
        setTimeout(poll, LOG_POLL_MS);
      } else {
        status.textContent = chunk.gone || (offset ? "" : "(no output)");
        if (log.dataset.running === "true") showEnded(log).catch(() => location.reload());
      }
    };
    poll();
  }

  // A trial that ended while its page followed it, shown as the page loaded now shows it, in
  // place: every part above the log is put in place of the one shown, the log keeps what was
  // followed, and its "follow" box goes (the focus on it going to the log). The focus stays where
  // it was (a link or field of the new parts found by its address or id), where a reload took
  // it, and a screen reader's place, to the page's start.
  async function showEnded(log) {
    log.dataset.running = "false";
    const response = await fetchData(location.href, "text/html");
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const section = log.closest("section");
    const parts = [...fresh.getElementById("log").closest("section").parentElement.children];
    const focused = document.activeElement;
    const key = focused && !section.contains(focused) && (focused.getAttribute("href") || focused.id);
    while (section.previousElementSibling) section.previousElementSibling.remove();
    section.before(...parts.slice(0, parts.findIndex((part) => part.contains(fresh.getElementById("log")))));
    const box = document.getElementById("live");
    if (box === document.activeElement) log.focus();
    if (box) box.closest("p").remove();
    for (const id of ["log-attempt", "earlier-attempts"]) {
      document.getElementById(id).replaceWith(fresh.getElementById(id));
    }
    if (key) {
      const again = [...section.parentElement.querySelectorAll("a[href], [id]")]
        .find((el) => (el.getAttribute("href") || el.id) === key);
      if (again) again.focus();
    }
  }

  // The text of the log's last line, the one the page shows unfinished, erased (from the page's
  // last line break on): a carriage return has the text after it written over it.
  function eraseLine(log) {
    for (let node = log.lastChild; node && node.nodeType === Node.TEXT_NODE; node = log.lastChild) {
      const end = node.data.lastIndexOf("\n");
      if (end >= 0) {
        node.data = node.data.slice(0, end + 1);
        return;
      }
      node.remove();
    }
  }

  // The trial's state and reason as the log's answer gives them now: those of the attempt the
  // page follows, and the notes of the runs lost before it, not those the page was opened with;
  // how long it has run so far, while it runs.
  function showTrial(chunk) {
    const elapsed = document.getElementById("trial-elapsed");
    if (elapsed && chunk.elapsed !== null) elapsed.textContent = duration(chunk.elapsed);
    const state = document.getElementById("trial-state");
    if (state.textContent !== chunk.state) {
      state.textContent = chunk.state;
      state.className = `state ${chunk.state}`;
    }
    const card = document.getElementById("reason");
    const text = card && card.querySelector(".reason-text");
    if (text && chunk.running && text.textContent !== chunk.reason) {
      text.textContent = chunk.reason;
      card.hidden = !chunk.reason;
    }
  }

  // The attempt in the heading, and a link to the log of each one before it, as a terminal shows
  // it (as the page shows the current attempt's).
  function showAttempt(log, attempt) {
    document.getElementById("log-attempt").textContent = attempt > 1 ? `(attempt ${attempt})` : "";
    document.getElementById("trial-attempt").textContent = attempt;
    const earlier = document.getElementById("earlier-attempts");
    earlier.querySelectorAll("a").forEach((link) => link.remove());
    for (let k = 1; k < attempt; k++) {
      const link = Object.assign(document.createElement("a"), {href: `${log.dataset.full}?attempt=${k}&terminal=true`});
      link.dataset.attempt = k;
      link.textContent = `attempt ${k}`;
      earlier.append(link, " ");
    }
    earlier.hidden = attempt < 2;
  }

  // New study: the API's own POST /studies; its problems are listed by field path. A study
  // stored (201), or restarted or still running (200, running), is opened; one the service
  // answers 200 as it ended (the definition is the stored study's, unchanged: a restart whose
  // trial budget was not raised, or a study pasted again) is not run again, which the form says
  // (:func:`unchanged`), staying for another try. What the form says then takes the focus from
  // Submit, so the keyboard reads it next, the first problem included, without hunting for it.
  function newStudyPage() {
    const form = document.getElementById("new-study");
    const text = document.getElementById("study-text");
    const problems = document.getElementById("study-problems");
    // Disabled in the page: without this script, the form would send the study in the
    // address of a GET that stores nothing.
    document.getElementById("submit-study").disabled = false;
    document.getElementById("study-file").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      if (file) text.value = await file.text();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      problems.hidden = true;
      problems.innerHTML = "";
      const trimmed = text.value.trim();
      const type = trimmed.startsWith("{") ? "application/json" : "application/yaml";
      try {
        const body = await write(form.dataset.api, type, text.value);
        const page = form.dataset.studyUrl.replace("NAME", encodeURIComponent(body.name));
        if (!ENDED.includes(body.status)) {
          location.href = page;
          return;
        }
        const study = await getJSON(body.links.self).catch(() => ({status: body.status}));
        unchanged(problems, body.name, page, study);
      } catch (error) {
        showProblems(problems, error.answer && error.answer.problems ? error.answer : {message: error.message});
      }
      problems.focus();
    });
  }

  // The form's answer to a definition identical to an ended study's: nothing was stored or
  // run, what the study is (its status, why it ended), how to run more of it (a study that
  // reached its trial budget: that budget raised above its trials), and a link to it.
  function unchanged(box, name, page, study) {
    const heading = document.createElement("p");
    heading.className = "problem";
    heading.id = "study-unchanged";
    const ended = study.reason ? `${study.status}: ${study.reason}` : study.status;
    heading.textContent = `The study ${JSON.stringify(name)} exists already with this definition, unchanged, and ` +
      `ended (${ended}): nothing was created or restarted.`;
    const next = document.createElement("p");
    const budget = study.trials !== undefined && study.maxTrials && study.trials >= study.maxTrials;
    next.textContent = budget
      ? `To run more of its trials, raise maxTrials (spec.maxTrialCount for a Katib Experiment) above its ` +
        `${study.trials} trial${study.trials === 1 ? "" : "s"} and submit again; to run it anew, give it another name. `
      : "To run it anew, give it another name (or delete the stored study first). ";
    next.append(Object.assign(document.createElement("a"), {href: page, textContent: "Open the study"}));
    box.append(heading, next);
    box.hidden = false;
  }

  function showProblems(box, body) {
    const heading = document.createElement("p");
    heading.className = "problem";
    heading.textContent = body.problems ? "The study is not valid:" : body.message || "The study was not accepted.";
    box.appendChild(heading);
    if (body.problems) {
      const list = document.createElement("ul");
      for (const problem of body.problems) {
        const item = document.createElement("li");
        item.dataset.path = problem.path;
        const path = Object.assign(document.createElement("code"), {textContent: problem.path || "(study)"});
        item.append(path, " " + problem.message);
        list.appendChild(item);
      }
      box.appendChild(list);
      if (body.problemsNotListed) {
        const more = Object.assign(document.createElement("p"), {className: "problem"});
        more.textContent = `and ${body.problemsNotListed} more problems, not listed`;
        box.appendChild(more);
      }
    }
    box.hidden = false;
  }

  return {studiesPage, studyPage, trialsPage, trialPage, newStudyPage};
})();

// Each page names its own set-up in <body data-page>: no inline script, which the
// Content-Security-Policy refuses.
document.addEventListener("DOMContentLoaded", () => {
  katuna.studiesPage();
  const page = katuna[document.body.dataset.page];
  if (page) page();
});

/* Draws the report's charts with uPlot (inlined before this script). Python (reports/charts.py)
 * has already decided what each chart shows and where its data has holes; this only draws:
 *  - one uPlot per <figure class="hchart">, from the JSON beside it;
 *  - charts on the run's time axis (`sync`) share one x range, one cursor and one zoom;
 *  - fault windows are shaded under the lines, events are dashed lines over them, and the note
 *    under a chart names the windows and events at the cursor;
 *  - a `null` in a series is a hole in the data and is drawn as a gap; a series that simply has
 *    no point at another series' x is joined across it (uPlot's `undefined`).
 * Exposed as window.HarnessCharts so the live page can redraw after new data. */
(function () {
  "use strict";
  var SYNC_KEY = "harness-time";
  var mounted = [];
  var syncing = false;

  function fmt(v) {
    if (v == null || !isFinite(v)) return "\u2013";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e7 || a < 1e-3)) return v.toExponential(2);
    return String(+v.toPrecision(4));
  }

  function percentOfNines(n) {
    return String(+(100 * (1 - Math.pow(10, -n))).toPrecision(6)) + "%";
  }

  // One x array for all series; each series' array holds its values at its own x, `undefined`
  // elsewhere (joined across) and `null` where Python marked a hole (a gap).
  function align(spec) {
    var index = new Map();
    spec.series.forEach(function (s) {
      s.points.forEach(function (p) { index.set(p[0], true); });
    });
    var xs = Array.from(index.keys()).sort(function (a, b) { return a - b; });
    xs.forEach(function (x, i) { index.set(x, i); });
    var data = [xs];
    spec.series.forEach(function (s) {
      var ys = new Array(xs.length);
      s.points.forEach(function (p) {
        var y = p[1];
        ys[index.get(p[0])] = spec.log_y && y != null && y <= 0 ? null : y;
      });
      data.push(ys);
    });
    return data;
  }

  // The page's time axis is the first synced chart's range (the run's own charts come first):
  // a chart whose data starts earlier (memory during start-up) lines up with it, and shows its
  // start-up when zoomed out (Ctrl+wheel).
  function sharedRange() {
    var first = mounted.find(function (m) { return m.spec.sync; });
    if (!first) return null;
    var lo = first.spec.x_range[0], hi = first.spec.x_range[1];
    return lo != null && hi != null && hi > lo ? [lo, hi] : null;
  }

  function homeRange(spec) {
    var r = spec.sync ? sharedRange() : null;
    if (r) return r;
    var lo = spec.x_range[0], hi = spec.x_range[1];
    if (lo == null || hi == null || !(hi > lo)) return [lo == null ? 0 : lo, (lo == null ? 0 : lo) + 1];
    return [lo, hi];
  }

  function setX(target, min, max) {
    if (syncing) return;
    syncing = true;
    try {
      mounted.forEach(function (m) {
        if (m.plot && (m === target || (target.spec.sync && m.spec.sync))) m.plot.setScale("x", {min: min, max: max});
      });
    } finally {
      syncing = false;
    }
  }

  function drawBands(spec) {
    return function (u) {
      var ctx = u.ctx, box = u.bbox;
      ctx.save();
      ctx.fillStyle = "rgba(255, 68, 170, 0.15)";
      spec.bands.forEach(function (b) {
        if (b[0] == null || b[1] == null) return;
        var a = Math.max(box.left, u.valToPos(b[0], "x", true));
        var e = Math.min(box.left + box.width, u.valToPos(b[1], "x", true));
        if (e < a) return;
        ctx.fillRect(a, box.top, Math.max(e - a, 1), box.height);
      });
      ctx.restore();
    };
  }

  function drawMarkers(spec) {
    return function (u) {
      var ctx = u.ctx, box = u.bbox;
      ctx.save();
      ctx.strokeStyle = "#888";
      ctx.lineWidth = 1;
      ctx.setLineDash([4, 3]);
      spec.markers.forEach(function (m) {
        if (m[0] == null) return;
        var x = u.valToPos(m[0], "x", true);
        if (x < box.left || x > box.left + box.width) return;
        ctx.beginPath();
        ctx.moveTo(x, box.top);
        ctx.lineTo(x, box.top + box.height);
        ctx.stroke();
      });
      ctx.restore();
    };
  }

  function noteAtCursor(spec, note) {
    return function (u) {
      var left = u.cursor.left;
      if (left == null || left < 0) { note.textContent = ""; return; }
      var x = u.posToVal(left, "x");
      var near = (u.scales.x.max - u.scales.x.min) / 80;
      var names = [];
      spec.bands.forEach(function (b) {
        if (b[0] != null && b[1] != null && b[0] <= x && x <= b[1]) names.push("window: " + b[2]);
      });
      spec.markers.forEach(function (m) {
        if (m[0] != null && Math.abs(m[0] - x) <= near) names.push(m[1] + " at " + fmt(m[0]) + " " + spec.x_unit);
      });
      note.textContent = names.join(" \u00b7 ");
    };
  }

  function xAxis(spec) {
    var axis = {label: spec.x_label};
    if (spec.x_ticks.length) {
      axis.splits = function () { return spec.x_ticks.map(function (t) { return t[0]; }); };
      axis.values = function () { return spec.x_ticks.map(function (t) { return t[1]; }); };
    } else {
      axis.values = function (u, splits) { return splits.map(function (v) { return fmt(v) + " " + spec.x_unit; }); };
    }
    return axis;
  }

  function options(spec, host, note) {
    var started = false;
    var unit = spec.unit;
    var series = [{
      label: spec.x_kind === "nines" ? "percentile" : spec.x_kind === "index" ? spec.x_label : "t",
      value: function (u, v) {
        if (v == null) return "\u2013";
        if (spec.x_kind === "nines") return percentOfNines(v);
        if (spec.x_kind === "index") return String(Math.round(v));
        return fmt(v) + " " + spec.x_unit;
      },
    }];
    spec.series.forEach(function (s) {
      var line = {
        label: s.label, stroke: s.colour, width: 1.5, spanGaps: false, points: {show: false},
        value: function (u, v) { return v == null ? "\u2013" : fmt(v) + " " + unit; },
      };
      if (s.dots) {
        line.paths = function () { return null; };
        line.points = {show: true, size: 8, fill: s.colour};
      }
      series.push(line);
    });
    var opts = {
      width: Math.max(320, host.clientWidth || 900),
      height: spec.height,
      series: series,
      scales: {
        x: {
          time: false,
          range: function (u, min, max) { return started ? [min, max] : homeRange(spec); },
        },
        y: spec.log_y ? {distr: 3} : {
          range: function (u, min, max) {
            var top = max == null || !(max > 0) ? 1 : max * 1.08;
            return [Math.min(0, min == null ? 0 : min), top];
          },
        },
      },
      axes: [xAxis(spec), {
        label: unit, size: 64,
        values: function (u, splits) { return splits.map(fmt); },
      }],
      legend: {live: true},
      cursor: {
        drag: {x: true, y: false},
        bind: {dblclick: function () { return null; }},  // the page's own double-click: home range
      },
      hooks: {
        drawClear: [drawBands(spec)],
        draw: [drawMarkers(spec)],
        setCursor: [noteAtCursor(spec, note)],
        ready: [function () { started = true; }],
        setScale: [function (u, key) {
          if (key === "x" && started && !syncing && spec.sync) setX(findMounted(u), u.scales.x.min, u.scales.x.max);
        }],
      },
    };
    if (spec.sync) opts.cursor.sync = {key: SYNC_KEY, setSeries: false};
    return opts;
  }

  function findMounted(plot) {
    for (var i = 0; i < mounted.length; i++) if (mounted[i].plot === plot) return mounted[i];
    return null;
  }

  function wheel(m) {
    return function (e) {
      if (!(e.ctrlKey || e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY))) return;  // plain wheel scrolls the page
      e.preventDefault();
      var u = m.plot, min = u.scales.x.min, max = u.scales.x.max, width = max - min;
      if (e.ctrlKey) {
        var at = u.posToVal(e.offsetX, "x"), f = e.deltaY < 0 ? 0.8 : 1.25;
        setX(m, at - (at - min) * f, at + (max - at) * f);
      } else {
        var d = (e.deltaX || e.deltaY) > 0 ? width * 0.1 : -width * 0.1;
        setX(m, min + d, max + d);
      }
    };
  }

  function mount(fig) {
    var specNode = fig.querySelector("script.hchart-spec");
    var host = fig.querySelector(".hchart-plot");
    var note = fig.querySelector(".hchart-note");
    if (!specNode || !host) return;
    var spec = JSON.parse(specNode.textContent);
    var m = {fig: fig, spec: spec, plot: null};
    mounted.push(m);
    var data = align(spec);
    m.plot = new uPlot(options(spec, host, note), data, host);
    m.plot.over.addEventListener("dblclick", function () { var r = homeRange(spec); setX(m, r[0], r[1]); });
    m.plot.over.addEventListener("wheel", wheel(m), {passive: false});
    var shown = 0;
    for (var i = 1; i < data.length; i++) for (var j = 0; j < data[i].length; j++) if (data[i][j] != null) shown++;
    fig.dataset.points = String(shown);
    fig.dataset.rendered = "1";
  }

  function mountAll(root) {
    var figs = (root || document).querySelectorAll("figure.hchart");
    for (var i = 0; i < figs.length; i++) {
      try {
        mount(figs[i]);
      } catch (err) {
        figs[i].dataset.rendered = "error";
        console.error("chart " + i + ": " + err);
      }
    }
    // Synced charts were each made with the range known when they were made: give all the
    // page's shared range now that every chart is known.
    var r = sharedRange();
    var first = mounted.find(function (m) { return m.spec.sync && m.plot; });
    if (r && first) setX(first, r[0], r[1]);
  }

  function destroyAll() {
    mounted.forEach(function (m) { if (m.plot) m.plot.destroy(); });
    mounted = [];
  }

  function currentX() {
    var m = mounted.find(function (x) { return x.spec.sync && x.plot; });
    return m ? [m.plot.scales.x.min, m.plot.scales.x.max] : null;
  }

  window.addEventListener("resize", function () {
    mounted.forEach(function (m) {
      var host = m.fig.querySelector(".hchart-plot");
      if (m.plot && host) m.plot.setSize({width: Math.max(320, host.clientWidth || 900), height: m.spec.height});
    });
  });

  // Each chart's x range, in page order (`sync`: on the shared time axis): what a test reads.
  function ranges() {
    return mounted.map(function (m) {
      return {title: m.spec.title, sync: m.spec.sync, min: m.plot ? m.plot.scales.x.min : null,
              max: m.plot ? m.plot.scales.x.max : null};
    });
  }

  window.HarnessCharts = {mountAll: mountAll, destroyAll: destroyAll, currentX: currentX, ranges: ranges,
    setX: function (min, max) {
      var m = mounted.find(function (x) { return x.spec.sync && x.plot; });
      if (m) setX(m, min, max);
    }};
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { mountAll(); });
  else mountAll();
})();

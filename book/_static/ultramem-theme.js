/* The book's figures and widgets follow the page's light or dark theme, and every widget slider
 * gets an accessible name.
 *
 * Figures: ultramem_edu.viz.palette draws every figure with mid-grey text and grid lines
 * (#808080, rgba(128,128,128,0.25)) on transparent backgrounds, readable on both themes but below
 * WCAG's 4.5:1 for small text on white. Once a figure is drawn (ultramem_edu.viz._plotly calls
 * window.ultramemFollowTheme) and whenever the reader switches the theme (pydata-sphinx-theme sets
 * <html data-theme>), those greys become the text and grid colours for what the figure is drawn on
 * (the page's background, or a panel's around it), Okabe–Ito black
 * becomes the theme's ink, and menus and sliders get theme backgrounds. Every other colour (the
 * Okabe–Ito palette, Cividis) is kept.
 *
 * Sliders: the ipywidgets HTML manager draws a slider's handle as role="slider" with no name; it
 * is named by the widget's own description label (aria-labelledby).
 *
 * Keyboard: plotly draws a figure's sliders and menus in SVG for the mouse only. Each slider
 * becomes a focusable role="slider" (arrow keys, Home, End step it, running the step's update as
 * a click would) and each menu button a focusable role="button" (Enter or Space).
 */
(function () {
  "use strict";

  var GREY_TEXT = "#808080";
  var GREY_GRID = "rgba(128,128,128,0.25)";
  var INK = "#000000";
  var THEMES = {
    // menus stay light buttons with dark text in both: plotly fills the chosen one with a fixed
    // light blue (#F4FAFF) that no layout key changes
    light: {text: "#454545", grid: "rgba(0,0,0,0.16)", ink: "#000000",
            menu: "#f2f3f5", menuText: "#1f1f1f", menuActive: "#d7dbe2", border: "#767676"},
    dark: {text: "#d0d0d0", grid: "rgba(255,255,255,0.2)", ink: "#e8e8e8",
           menu: "#e4e7eb", menuText: "#1f1f1f", menuActive: "#b9c0ca", border: "#9a9a9a"},
  };

  function currentTheme() {
    return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
  }

  // The palette for what a figure is drawn on: the first background behind it that is not
  // transparent (the page's, or a panel's that a theme or a widget puts around it).
  function paletteFor(gd) {
    for (var el = gd.parentElement; el; el = el.parentElement) {
      var m = /rgba?\(([^)]+)\)/.exec(getComputedStyle(el).backgroundColor);
      if (!m) continue;
      var c = m[1].split(",").map(Number);
      if (c.length > 3 && c[3] === 0) continue;
      var lum = (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255;
      return lum < 0.5 ? "dark" : "light";
    }
    return currentTheme();
  }

  function role(value) {
    if (typeof value !== "string") return null;
    var v = value.replace(/\s+/g, "").toLowerCase();
    if (v === GREY_TEXT || v === "rgb(128,128,128)") return "text";
    if (v === GREY_GRID) return "grid";
    if (v === INK || v === "black" || v === "rgb(0,0,0)") return "ink";
    return null;
  }

  // Every themed colour of a layout, as plotly.relayout paths ("xaxis.gridcolor",
  // "annotations[2].font.color"); slider steps and menu buttons hold data, not style.
  function layoutColours(node, path, found) {
    if (Array.isArray(node)) {
      node.forEach(function (item, k) { layoutColours(item, path + "[" + k + "]", found); });
    } else if (node && typeof node === "object") {
      Object.keys(node).forEach(function (key) {
        if (key === "template" || key === "steps" || key === "buttons" || key.charAt(0) === "_") return;
        layoutColours(node[key], path ? path + "." + key : key, found);
      });
    } else if (role(node)) {
      found[path] = role(node);
    }
    return found;
  }

  var TRACE_PATHS = ["marker.color", "line.color", "marker.line.color", "textfont.color", "fillcolor"];

  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, obj);
  }

  function remember(gd) {
    if (gd.__ultramemTheme) return gd.__ultramemTheme;
    var layout = layoutColours(gd.layout || {}, "", {});
    if (!gd.layout || !gd.layout.font || !gd.layout.font.color) layout["font.color"] = "text";
    (gd.layout.updatemenus || []).forEach(function (menu, k) {
      layout["updatemenus[" + k + "].bgcolor"] = "menu";
      layout["updatemenus[" + k + "].bordercolor"] = "border";
      layout["updatemenus[" + k + "].font.color"] = "menuText";
    });
    (gd.layout.sliders || []).forEach(function (slider, k) {
      layout["sliders[" + k + "].bgcolor"] = "menu";
      layout["sliders[" + k + "].activebgcolor"] = "menuActive";
      layout["sliders[" + k + "].bordercolor"] = "border";
      layout["sliders[" + k + "].tickcolor"] = "text";
    });
    var traces = [];
    (gd.data || []).forEach(function (trace, index) {
      TRACE_PATHS.forEach(function (path) {
        var r = role(get(trace, path));
        if (r) traces.push({index: index, path: path, role: r});
      });
    });
    gd.__ultramemTheme = {layout: layout, traces: traces, applied: null};
    return gd.__ultramemTheme;
  }

  function follow(gd) {
    if (!window.Plotly || !gd || !gd._fullLayout) return Promise.resolve(false);
    var memo = remember(gd);
    var name = paletteFor(gd);
    if (memo.applied === name) { gd.dataset.theme = currentTheme(); return Promise.resolve(true); }
    var colours = THEMES[name];
    var update = {};
    Object.keys(memo.layout).forEach(function (path) { update[path] = colours[memo.layout[path]]; });
    memo.applied = name;
    var done = Plotly.relayout(gd, update);
    memo.traces.forEach(function (t) {
      var style = {};
      style[t.path] = colours[t.role];
      done = done.then(function () { return Plotly.restyle(gd, style, [t.index]); });
    });
    // the figure says which theme it shows once it is drawn in it (the tests wait for this)
    // data-theme: the page theme it is drawn for, data-palette: the colours (the tests wait for it)
    return done.then(function () {
      gd.dataset.palette = name;
      gd.dataset.theme = currentTheme();
      return true;
    });
  }

  function followAll() {
    return Promise.all(Array.prototype.map.call(
      document.querySelectorAll(".plotly-graph-div"), function (gd) { return follow(gd); }));
  }

  function nameSliders() {
    var handles = document.querySelectorAll(
      '.noUi-handle[role="slider"]:not([aria-label]):not([aria-labelledby])');
    Array.prototype.forEach.call(handles, function (handle) {
      var widget = handle.closest(".widget-slider, .widget-hslider, .widget-vslider, .jupyter-widgets");
      var label = widget && widget.querySelector(".widget-label");
      if (!label || !label.textContent.trim()) return;
      if (!label.id) label.id = "ultramem-slider-label-" + Math.random().toString(36).slice(2, 10);
      handle.setAttribute("aria-labelledby", label.id);
    });
  }

  function runStep(gd, item) {
    if (!item || !item.method || item.method === "skip") return;
    Plotly[item.method].apply(null, [gd].concat(item.args || []));
  }

  function keyboardSliders(gd) {
    (gd.layout.sliders || []).forEach(function (slider, k) {
      var group = gd.querySelectorAll("g.slider-group")[k];
      var steps = slider.steps || [];
      if (!group || !steps.length) return;
      var prefix = ((slider.currentvalue || {}).prefix || "").replace(/[:=\s]+$/, "");
      var title = (gd.getAttribute("aria-label") || "Figure").replace(/^Figure: /, "");
      var active = function () { return gd._fullLayout.sliders[k].active || 0; };
      var describe = function () {
        group.setAttribute("aria-valuenow", String(active()));
        group.setAttribute("aria-valuetext", (prefix ? prefix + " " : "") + steps[active()].label);
      };
      group.setAttribute("tabindex", "0");
      group.setAttribute("role", "slider");
      group.setAttribute("aria-label", (prefix || "slider") + ", " + title);
      group.setAttribute("aria-valuemin", "0");
      group.setAttribute("aria-valuemax", String(steps.length - 1));
      describe();
      if (group.__ultramemKeys) return;
      group.__ultramemKeys = true;
      group.addEventListener("keydown", function (event) {
        var now = active(), next = now;
        if (event.key === "ArrowRight" || event.key === "ArrowUp") next = Math.min(now + 1, steps.length - 1);
        else if (event.key === "ArrowLeft" || event.key === "ArrowDown") next = Math.max(now - 1, 0);
        else if (event.key === "Home") next = 0;
        else if (event.key === "End") next = steps.length - 1;
        else return;
        event.preventDefault();
        if (next === now) return;
        var update = {};
        update["sliders[" + k + "].active"] = next;
        Plotly.relayout(gd, update).then(function () {
          runStep(gd, steps[next]);
          describe();
          var again = gd.querySelectorAll("g.slider-group")[k];
          if (again && again !== group) { keyboardSliders(gd); again.focus(); }
        });
      });
    });
    gd.querySelectorAll("g.updatemenu-button").forEach(function (button) {
      var label = (button.textContent || "").trim();
      button.setAttribute("tabindex", "0");
      button.setAttribute("role", "button");
      if (label) button.setAttribute("aria-label", label);
      if (button.__ultramemKeys) return;
      button.__ultramemKeys = true;
      button.addEventListener("keydown", function (event) {
        if (event.key !== "Enter" && event.key !== " ") return;
        event.preventDefault();
        button.dispatchEvent(new MouseEvent("click", {bubbles: true}));
      });
    });
  }

  window.ultramemFollowTheme = function (gd) {
    return follow(gd).then(function (done) {
      keyboardSliders(gd);
      gd.on("plotly_afterplot", function () { keyboardSliders(gd); });
      return done;
    });
  };
  window.ultramemFollow = follow;
  window.ultramemThemes = THEMES;

  new MutationObserver(followAll).observe(document.documentElement,
                                          {attributes: true, attributeFilter: ["data-theme"]});
  var pending = false;
  new MutationObserver(function () {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; nameSliders(); });
  }).observe(document, {childList: true, subtree: true});
  document.addEventListener("DOMContentLoaded", nameSliders);
})();

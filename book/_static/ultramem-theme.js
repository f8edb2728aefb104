/* The book's figures and widgets follow the page's light or dark theme, and every widget slider
 * gets an accessible name.
 *
 * Figures: ultramem_edu.viz.palette draws every figure with mid-grey text and grid lines
 * (#808080, rgba(128,128,128,0.25)) on transparent backgrounds, readable on both themes but below
 * WCAG's 4.5:1 for small text on white. Once a figure is drawn (ultramem_edu.viz._plotly calls
 * window.ultramemFollowTheme) and whenever the reader switches the theme (pydata-sphinx-theme sets
 * <html data-theme>), those greys become the theme's text and grid colours, Okabe–Ito black
 * becomes the theme's ink, and menus and sliders get theme backgrounds. Every other colour (the
 * Okabe–Ito palette, Cividis) is kept.
 *
 * Sliders: the ipywidgets HTML manager draws a slider's handle as role="slider" with no name; it
 * is named by the widget's own description label (aria-labelledby).
 */
(function () {
  "use strict";

  var GREY_TEXT = "#808080";
  var GREY_GRID = "rgba(128,128,128,0.25)";
  var INK = "#000000";
  var THEMES = {
    light: {text: "#454545", grid: "rgba(0,0,0,0.16)", ink: "#000000",
            menu: "#f2f3f5", menuActive: "#d7dbe2", border: "#767676"},
    dark: {text: "#d0d0d0", grid: "rgba(255,255,255,0.2)", ink: "#e8e8e8",
           menu: "#2b2f36", menuActive: "#49505b", border: "#9a9a9a"},
  };

  function currentTheme() {
    return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
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
    var name = currentTheme();
    if (memo.applied === name) return Promise.resolve(true);
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
    return done.then(function () { gd.dataset.theme = name; return true; });
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

  window.ultramemFollowTheme = follow;
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

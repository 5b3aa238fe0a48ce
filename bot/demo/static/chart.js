// Slack's data visualization block (docs.slack.dev: Block Kit, data visualization block) as an inline SVG: bar
// (grouped when there are several series), line, area and pie charts with a title, axes, tick labels, axis labels
// and a legend. The SVG is an image for screen readers (role="img") named by the title and
// described by its data in words; each bar, point and slice carries its value as a tooltip (<title>).

import { el } from "./mrkdwn.js";

const SVG = "http://www.w3.org/2000/svg";
// Distinct for the common colour-vision deficiencies, each at least 4.5:1 against white (white labels on pie slices).
export const PALETTE = ["#1264a3", "#c05300", "#007a5a", "#8f3f97", "#8a5a00", "#4d5966"];
const WIDTH = 560;
const HEIGHT = 270;
const FONT = 12;
let counter = 0;

function svg(name, attributes = {}, text = "") {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text) node.textContent = text;
  return node;
}

function tooltip(node, text) {
  node.append(svg("title", {}, text));
  return node;
}

const exact = new Intl.NumberFormat("en-US", { maximumFractionDigits: 4 });
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });

export function formatValue(value) {
  return Math.abs(value) >= 1e5 ? compact.format(value) : exact.format(value);
}

// A value written on the chart: 1.39M, 26.2K, 1,234, 3.93.
const short = new Intl.NumberFormat("en-US", { notation: "compact", maximumSignificantDigits: 3 });
const twoDecimals = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

function shortValue(value) {
  return Math.abs(value) >= 1e4 ? short.format(value) : twoDecimals.format(value);
}

// One format for a whole axis: compact (20K, 1.5M) once any tick reaches 10,000.
function tickFormat(ticks) {
  return Math.max(...ticks.map(Math.abs)) >= 1e4 ? (v) => compact.format(v) : (v) => exact.format(v);
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return step || 10 * power;
}

// The y axis: from 0 for bars and areas (their height is the value), from near the data for lines.
function scale(values, fromZero) {
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (fromZero) { low = Math.min(0, low); high = Math.max(0, high); }
  if (low === high) { low -= Math.abs(low) || 1; high += Math.abs(high) || 1; }
  const step = niceStep(high - low, 5);
  const start = Math.floor(low / step) * step;
  const end = Math.ceil(high / step) * step;
  const ticks = [];
  for (let t = start; t <= end + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return { low: start, high: end, ticks };
}

function textWidth(text) {
  return [...text].length * FONT * 0.6;
}

function describe(block) {
  const chart = block.chart;
  if (chart.type === "pie") {
    const total = chart.segments.reduce((sum, s) => sum + s.value, 0);
    return `Pie chart. ${chart.segments.map((s) => `${s.label}: ${formatValue(s.value)} (${percent(s.value, total)})`).join("; ")}.`;
  }
  const axis = chart.axis_config || {};
  const kind = { bar: "Bar chart", line: "Line chart", area: "Area chart" }[chart.type];
  const series = chart.series.map((s) => `${s.name}: ${s.data.map((p) => `${p.label} ${formatValue(p.value)}`).join(", ")}`);
  const axes = [axis.x_label && `x axis: ${axis.x_label}`, axis.y_label && `y axis: ${axis.y_label}`].filter(Boolean);
  return `${kind}${axes.length ? ` (${axes.join(", ")})` : ""}. ${series.join(". ")}.`;
}

function percent(value, total) {
  return `${(100 * value / total).toFixed(value / total < 0.1 ? 1 : 0)}%`;
}

function cartesian(root, block) {
  const chart = block.chart;
  const axis = chart.axis_config || {};
  const categories = axis.categories || [];
  const series = chart.series.map((s) => ({
    name: s.name, values: categories.map((c) => s.data.find((p) => p.label === c)?.value ?? null),
  }));
  const values = series.flatMap((s) => s.values).filter((v) => v !== null);
  const { low, high, ticks } = scale(values, chart.type !== "line");
  const tickLabels = ticks.map(tickFormat(ticks));
  const left = 14 + (axis.y_label ? FONT + 8 : 0) + Math.max(...tickLabels.map(textWidth));
  const longest = Math.max(...categories.map(textWidth));
  const plotWidth = WIDTH - left - 16;
  const band = plotWidth / categories.length;
  const slanted = longest > band - 6;
  const every = slanted ? Math.max(1, Math.ceil(categories.length / 12)) : 1;
  const labelDepth = slanted ? Math.min(longest, 130) * 0.71 + FONT : FONT + 4;
  const bottom = 10 + labelDepth + (axis.x_label ? FONT + 12 : 0);
  const bars = chart.type === "bar" ? series.length * categories.length : 0;
  const labelled = bars > 0 && bars <= 12 && series.length === 1;  // a value above each bar, as Slack's own
  const top = labelled ? 22 : 12;
  const plotHeight = HEIGHT - top - bottom;
  const y = (v) => top + plotHeight * (1 - (v - low) / (high - low));
  const x = (i) => left + band * (i + 0.5);

  const grid = svg("g", { class: "chart-grid", "aria-hidden": "true" });
  ticks.forEach((t, i) => {
    grid.append(svg("line", { x1: left, x2: WIDTH - 16, y1: y(t), y2: y(t), class: t === 0 ? "chart-zero" : "" }));
    grid.append(svg("text", { x: left - 6, y: y(t), "text-anchor": "end", "dominant-baseline": "middle",
      class: "chart-tick" }, tickLabels[i]));
  });
  const xLabels = svg("g", { class: "chart-categories", "aria-hidden": "true" });
  categories.forEach((c, i) => {
    if (i % every) return;
    const label = [...c].length > 20 ? `${[...c].slice(0, 19).join("")}…` : c;
    const attributes = slanted
      ? { x: x(i), y: top + plotHeight + 8, "text-anchor": "end", "dominant-baseline": "hanging",
          transform: `rotate(-45 ${x(i)} ${top + plotHeight + 8})` }
      : { x: x(i), y: top + plotHeight + 8, "text-anchor": "middle", "dominant-baseline": "hanging" };
    const text = svg("text", { ...attributes, class: "chart-tick" }, label);
    xLabels.append(label === c ? text : tooltip(text, c));
  });
  root.append(grid, xLabels);
  if (axis.y_label) {
    const cy = top + plotHeight / 2;
    root.append(svg("text", { x: 12, y: cy, transform: `rotate(-90 12 ${cy})`, "text-anchor": "middle",
      "dominant-baseline": "hanging", class: "chart-axis-label" }, axis.y_label));
  }
  if (axis.x_label) {
    root.append(svg("text", { x: left + plotWidth / 2, y: HEIGHT - 6, "text-anchor": "middle",
      class: "chart-axis-label" }, axis.x_label));
  }
  const marks = svg("g", { class: "chart-marks" });
  const base = y(Math.max(low, Math.min(0, high)));
  series.forEach((s, j) => {
    const color = PALETTE[j % PALETTE.length];
    const group = svg("g", { class: `chart-series chart-series-${chart.type}`, "data-series": s.name });
    if (chart.type === "bar") {
      const width = (band * 0.72) / series.length;
      s.values.forEach((v, i) => {
        if (v === null) return;
        const bx = left + band * i + band * 0.14 + width * j;
        group.append(tooltip(svg("rect", { x: bx, y: Math.min(y(v), base), width: Math.max(1, width - 1),
          height: Math.max(1, Math.abs(base - y(v))), fill: color, rx: 2, class: "chart-bar" }),
        `${categories[i]} · ${s.name}: ${formatValue(v)}`));
        if (labelled) {
          group.append(svg("text", { x: bx + width / 2, y: v >= 0 ? y(v) - 5 : y(v) + 5, "text-anchor": "middle",
            "dominant-baseline": v >= 0 ? "auto" : "hanging", class: "chart-value", "aria-hidden": "true" },
          shortValue(v)));
        }
      });
    } else {
      const points = s.values.map((v, i) => (v === null ? null : [x(i), y(v)]));
      const drawn = points.filter(Boolean);
      const line = drawn.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
      if (chart.type === "area" && drawn.length) {
        const first = drawn[0][0];
        const last = drawn[drawn.length - 1][0];
        group.append(svg("path", { d: `${line} L${last.toFixed(1)},${base} L${first.toFixed(1)},${base} Z`,
          fill: color, "fill-opacity": 0.18, stroke: "none" }));
      }
      group.append(svg("path", { d: line, fill: "none", stroke: color, "stroke-width": 2.5,
        "stroke-linejoin": "round", "stroke-linecap": "round" }));
      points.forEach((p, i) => {
        if (!p) return;
        const dense = categories.length > 12;
        group.append(tooltip(svg("circle", { cx: p[0], cy: p[1], r: dense ? 2.5 : 3.5, fill: color,
          stroke: dense ? "none" : "#fff", "stroke-width": 1.5, class: "chart-point" }),
        `${categories[i]} · ${s.name}: ${formatValue(s.values[i])}`));
      });
    }
    marks.append(group);
  });
  root.append(marks);
  root.append(svg("line", { x1: left, x2: left, y1: top, y2: top + plotHeight, class: "chart-axis",
    "aria-hidden": "true" }));
  return series.map((s, j) => ({ name: s.name, color: PALETTE[j % PALETTE.length] }));
}

function pie(root, block) {
  const segments = block.chart.segments;
  const total = segments.reduce((sum, s) => sum + s.value, 0);
  const radius = HEIGHT / 2 - 16;
  const cx = WIDTH / 2;
  const cy = HEIGHT / 2;
  let angle = -Math.PI / 2;
  const group = svg("g", { class: "chart-series chart-series-pie" });
  segments.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const sweep = (2 * Math.PI * s.value) / total;
    const label = `${s.label}: ${formatValue(s.value)} (${percent(s.value, total)})`;
    let shape;
    if (segments.length === 1) {
      shape = svg("circle", { cx, cy, r: radius, fill: color });
    } else {
      const [x0, y0] = [cx + radius * Math.cos(angle), cy + radius * Math.sin(angle)];
      const [x1, y1] = [cx + radius * Math.cos(angle + sweep), cy + radius * Math.sin(angle + sweep)];
      shape = svg("path", { d: `M${cx},${cy} L${x0.toFixed(2)},${y0.toFixed(2)} A${radius},${radius} 0 `
        + `${sweep > Math.PI ? 1 : 0} 1 ${x1.toFixed(2)},${y1.toFixed(2)} Z`, fill: color });
    }
    shape.setAttribute("class", "chart-slice");
    shape.setAttribute("stroke", "#fff");
    shape.setAttribute("stroke-width", "2");
    group.append(tooltip(shape, label));
    if (s.value / total >= 0.06) {
      const middle = angle + sweep / 2;
      const [tx, ty] = [cx + radius * 0.62 * Math.cos(middle), cy + radius * 0.62 * Math.sin(middle)];
      group.append(svg("text", { x: tx, y: ty, "text-anchor": "middle", "dominant-baseline": "middle",
        class: "chart-slice-label", "aria-hidden": "true" }, percent(s.value, total)));
    }
    angle += sweep;
  });
  root.append(group);
  return segments.map((s, i) => ({ name: `${s.label} · ${shortValue(s.value)}`, color: PALETTE[i % PALETTE.length] }));
}

export function renderChart(block) {
  counter += 1;
  const id = `chart-${counter}`;
  const figure = el("figure", "block-chart");
  figure.dataset.chartType = block.chart?.type || "";
  const caption = el("figcaption", "chart-title", block.title || "Chart");
  caption.id = `${id}-title`;
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "chart",
    "aria-labelledby": `${id}-title ${id}-desc`, preserveAspectRatio: "xMidYMid meet" });
  root.append(svg("title", {}, block.title || "Chart"), svg("desc", { id: `${id}-desc` }, describe(block)));
  const legend = block.chart.type === "pie" ? pie(root, block) : cartesian(root, block);
  figure.append(caption, root);
  if (block.chart.type === "pie" || legend.length > 1) {
    const list = el("ul", "chart-legend");
    list.setAttribute("aria-label", "Legend");
    for (const entry of legend) {
      const item = el("li");
      const swatch = el("span", "chart-swatch");
      swatch.style.background = entry.color;
      swatch.setAttribute("aria-hidden", "true");
      item.append(swatch, el("span", "", entry.name));
      list.append(item);
    }
    figure.append(list);
  }
  return figure;
}

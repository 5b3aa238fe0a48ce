// Slack's data table block (docs.slack.dev: Block Kit, data table block) as an HTML table:
// the caption, the header row, `page_size` rows a page with Previous / Next, and a sort on any column by clicking
// (or pressing Enter / Space on) its header: ascending, then descending, then the table's own order. Numbers
// (raw_number cells) sort by value and are right-aligned; text sorts as people read it (natural order).

import { el } from "./mrkdwn.js";

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
let counter = 0;

function cellText(cell) {
  if (!cell) return "";
  if (cell.type === "raw_number") return cell.text || String(cell.value);
  if (cell.type === "rich_text") {
    return (cell.elements || []).flatMap((s) => s.elements || []).map((e) => e.text || e.name || e.url || "").join("");
  }
  return cell.text || "";
}

function compare(a, b) {
  const numbers = a?.type === "raw_number" && b?.type === "raw_number";
  return numbers ? a.value - b.value : collator.compare(cellText(a), cellText(b));
}

export function renderDataTable(block) {
  counter += 1;
  const [header = [], ...rows] = block.rows || [];
  const pageSize = Math.max(1, Math.min(100, block.page_size || 5));
  const numeric = header.map((_, c) => rows.length > 0 && rows.every((r) => r[c]?.type === "raw_number"));
  const state = { column: -1, direction: "none", page: 0 };

  const wrapper = el("div", "block-table");
  const scroller = el("div", "table-scroll");
  const table = el("table", "data-table");
  const caption = el("caption", "", block.caption || "Table");
  caption.id = `table-${counter}-caption`;
  const head = el("thead");
  const headRow = el("tr");
  const sorters = header.map((cell, c) => {
    const th = el("th");
    th.scope = "col";
    if (numeric[c]) th.classList.add("number");
    const button = el("button", "sort-button");
    button.type = "button";
    button.append(el("span", "", cellText(cell)), el("span", "sort-icon"));
    button.addEventListener("click", () => sortBy(c));
    th.append(button);
    headRow.append(th);
    return { th, button };
  });
  head.append(headRow);
  const body = el("tbody");
  table.append(caption, head, body);
  scroller.append(table);
  wrapper.append(scroller);

  const pager = el("div", "table-pager");
  const status = el("span", "table-status");
  status.setAttribute("aria-live", "polite");
  const previous = el("button", "block-button pager-button", "Previous");
  const next = el("button", "block-button pager-button", "Next");
  previous.type = next.type = "button";
  previous.setAttribute("aria-label", "Previous page");
  next.setAttribute("aria-label", "Next page");
  previous.addEventListener("click", () => { state.page -= 1; draw(); });
  next.addEventListener("click", () => { state.page += 1; draw(); });
  const pages = Math.ceil(rows.length / pageSize);
  if (pages > 1) {
    pager.append(status, previous, next);
    wrapper.append(pager);
  }

  function ordered() {
    const indexed = rows.map((row, i) => [row, i]);
    if (state.column < 0 || state.direction === "none") return indexed.map(([row]) => row);
    const sign = state.direction === "ascending" ? 1 : -1;
    indexed.sort(([a, i], [b, j]) => sign * compare(a[state.column], b[state.column]) || i - j);
    return indexed.map(([row]) => row);
  }

  function sortBy(column) {
    if (state.column !== column) Object.assign(state, { column, direction: "ascending" });
    else state.direction = { ascending: "descending", descending: "none", none: "ascending" }[state.direction];
    state.page = 0;
    draw();
  }

  function draw() {
    const all = ordered();
    const first = state.page * pageSize;
    body.replaceChildren(...all.slice(first, first + pageSize).map((row) => {
      const tr = el("tr");
      row.forEach((cell, c) => {
        const td = el("td", numeric[c] || cell?.type === "raw_number" ? "number" : "", cellText(cell));
        tr.append(td);
      });
      return tr;
    }));
    sorters.forEach(({ th, button }, c) => {
      const direction = c === state.column ? state.direction : "none";
      if (direction === "none") th.removeAttribute("aria-sort");
      else th.setAttribute("aria-sort", direction);
      button.dataset.sort = direction;
      button.querySelector(".sort-icon").textContent = { ascending: "▲", descending: "▼", none: "↕" }[direction];
      button.setAttribute("aria-label", `${cellText(header[c])}: sort ${
        direction === "ascending" ? "descending" : direction === "descending" ? "in the original order" : "ascending"}`);
    });
    status.textContent = `${first + 1}–${Math.min(first + pageSize, all.length)} of ${all.length} rows`;
    previous.disabled = state.page === 0;
    next.disabled = first + pageSize >= all.length;
  }

  draw();
  return wrapper;
}

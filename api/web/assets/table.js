// A sortable, searchable, paged table. Its rows come from a source:
//
//   source({limit, offset, sort, desc, q}) -> Promise<{items, total}>
//
// serverSource asks a route that pages itself (?limit=&offset=&sort=&q=,
// answering total beside items); clientSource pages a whole list in the
// browser. Rows are kept by key between refreshes, so a row being clicked
// is not replaced under the pointer.
import { el, empty, problem } from "./dom.js";
import { t, apply } from "./i18n.js";

const PAGE_SIZES = [25, 50, 100, 200];

export class Table {
  // columns: [{id, label (key), sort (key or null), cls, cell(row) -> Node|string}]
  constructor({ id, columns, source, rowKey, onOpen, sort, desc, pageSize, emptyKey, notFoundKey, searchKey }) {
    Object.assign(this, { columns, source, rowKey, onOpen, emptyKey, notFoundKey });
    this.sort = sort || null;
    this.desc = !!desc;
    this.limit = this.defaultLimit = pageSize || 50;
    this.offset = 0;
    this.q = "";
    this.rows = new Map();
    this.seq = 0;
    this.root = el("div", "table-box");
    this.root.id = id;
    const bar = el("div", "toolbar");
    this.search = el("input");
    this.search.type = "search";
    this.search.autocomplete = "off";
    this.search.dataset.i18nAttr = "placeholder:" + (searchKey || "table.search") + ";aria-label:" + (searchKey || "table.search");
    this.search.className = "search";
    let timer = 0;
    this.search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { this.q = this.search.value.trim(); this.offset = 0; this.refresh(); }, 200);
    });
    this.count = el("span", "count muted");
    bar.append(this.search, this.count);
    this.table = el("table");
    this.thead = el("thead");
    this.tbody = el("tbody");
    this.table.append(this.thead, this.tbody);
    const wrap = el("div", "table-wrap");
    wrap.append(this.table);
    this.msg = el("div", "small-empty");
    this.msg.hidden = true;
    this.pager = el("div", "pager");
    this.root.append(bar, wrap, this.msg, this.pager);
    this.tbody.addEventListener("click", (ev) => {
      if (ev.target.closest("a")) return;
      const tr = ev.target.closest("tr");
      if (tr && tr._row && this.onOpen) this.onOpen(tr._row);
    });
    this.tbody.addEventListener("keydown", (ev) => {
      const tr = ev.target.closest("tr");
      if (tr && (ev.key === "Enter" || ev.key === " ") && tr._row && this.onOpen) { ev.preventDefault(); this.onOpen(tr._row); }
    });
    this.head();
    apply(this.root);
  }

  // head draws the header; sortable columns are buttons with aria-sort.
  head() {
    const tr = el("tr");
    for (const c of this.columns) {
      const th = el("th", c.cls || "");
      th.dataset.col = c.id;
      if (c.sort) {
        const b = el("button", "sort", t(c.label));
        b.type = "button";
        b.dataset.sort = c.sort;
        const on = this.sort === c.sort;
        th.setAttribute("aria-sort", on ? (this.desc ? "descending" : "ascending") : "none");
        if (on) b.append(el("span", "arrow", this.desc ? " ▼" : " ▲"));
        b.addEventListener("click", () => {
          if (this.sort === c.sort) this.desc = !this.desc;
          else { this.sort = c.sort; this.desc = !!c.desc; }
          this.offset = 0;
          this.head();
          this.refresh();
        });
        th.append(b);
      } else {
        th.textContent = t(c.label);
      }
      tr.append(th);
    }
    this.thead.replaceChildren(tr);
  }

  setQuery(q) {
    this.search.value = q;
    this.q = q;
    this.offset = 0;
    this.refresh();
  }

  async refresh() {
    const seq = ++this.seq;
    let page;
    try {
      page = await this.source({ limit: this.limit, offset: this.offset, sort: this.sort, desc: this.desc, q: this.q });
    } catch (err) {
      if (!err.status && Table.offline) Table.offline(); // the exporter is gone, not just this route
      if (seq !== this.seq) return;
      this.rows.clear();
      this.tbody.replaceChildren();
      this.table.hidden = true;
      this.msg.hidden = false;
      this.msg.textContent = problem(err, this.notFoundKey);
      this.count.textContent = "";
      this.pager.replaceChildren();
      return;
    }
    if (seq !== this.seq) return; // a newer request is on its way
    this.render(page);
  }

  render(page) {
    const items = page.items || [];
    const total = Number.isFinite(page.total) ? page.total : items.length;
    if (this.offset > 0 && this.offset >= total) { // the list shrank under the last page
      this.offset = Math.max(0, Math.floor((total - 1) / this.limit) * this.limit);
      this.refresh();
      return;
    }
    const keep = new Map();
    const trs = [];
    for (const row of items) {
      const key = this.rowKey(row);
      let tr = this.rows.get(key);
      if (!tr) {
        tr = el("tr");
        tr.tabIndex = 0;
        tr.dataset.key = key;
      }
      tr._row = row;
      tr.replaceChildren(...this.columns.map((c) => {
        const td = el("td", c.cls || "");
        td.dataset.col = c.id;
        const v = c.cell(row);
        if (v instanceof Node) td.append(v);
        else td.textContent = v === undefined || v === null ? "" : String(v);
        if (c.label) td.dataset.label = t(c.label);
        return td;
      }));
      keep.set(key, tr);
      trs.push(tr);
    }
    this.rows = keep;
    this.tbody.replaceChildren(...trs);
    this.table.hidden = items.length === 0;
    this.msg.hidden = items.length > 0;
    if (!items.length) this.msg.textContent = t(this.q ? "table.noMatch" : this.emptyKey || "table.empty");
    this.count.textContent = total ? t("table.count", { from: this.offset + 1, to: this.offset + items.length, total }) : "";
    this.pages(total);
  }

  pages(total) {
    const parts = [];
    const pages = Math.max(1, Math.ceil(total / this.limit));
    const cur = Math.floor(this.offset / this.limit);
    const go = (p) => { this.offset = p * this.limit; this.refresh(); };
    const btn = (key, p, disabled, cls) => {
      const b = el("button", cls || "", t(key));
      b.type = "button";
      b.disabled = disabled;
      b.addEventListener("click", () => go(p));
      return b;
    };
    parts.push(btn("table.prev", cur - 1, cur === 0, "prev"));
    parts.push(el("span", "page-no", t("table.page", { n: cur + 1, of: pages })));
    parts.push(btn("table.next", cur + 1, cur >= pages - 1, "next"));
    const size = el("select");
    size.setAttribute("aria-label", t("table.pageSize"));
    for (const n of PAGE_SIZES) {
      const o = el("option", null, t("table.perPage", { n }));
      o.value = String(n);
      o.selected = n === this.limit;
      size.append(o);
    }
    size.addEventListener("change", () => { this.limit = Number(size.value); this.offset = 0; this.refresh(); });
    parts.push(size);
    this.pager.replaceChildren(...parts);
    this.pager.hidden = total === 0 || (pages === 1 && this.limit === this.defaultLimit);
  }
}

// clientSource pages, sorts and searches a whole list in the browser.
// get() returns the rows; text(row) what the search looks in; value(row,
// key) what sorting compares.
export function clientSource(get, text, value) {
  return async ({ limit, offset, sort, desc, q }) => {
    let rows = await get();
    if (q) {
      const low = q.toLowerCase();
      rows = rows.filter((r) => text(r).toLowerCase().includes(low));
    }
    if (sort) {
      rows = rows.slice().sort((a, b) => {
        const x = value(a, sort), y = value(b, sort);
        // Text compares by code unit, as the server sorts (byte order).
        const c = typeof x === "number" && typeof y === "number" ? x - y : x < y ? -1 : x > y ? 1 : 0;
        return desc ? -c : c;
      });
    }
    return { items: rows.slice(offset, offset + limit), total: rows.length };
  };
}

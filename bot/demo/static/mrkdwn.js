// Slack mrkdwn to DOM nodes: ```code blocks```, `code`, *bold*, _italic_, ~strike~, > quotes, <links|labels>,
// <@U…> mentions, <#C…|channel>, <!here>, :emoji:. Text arrives escaped as Slack escapes it (&amp; &lt; &gt;);
// every piece becomes a text node or an element built here, never HTML from the message.

export const EMOJI = {
  eyes: "👀", white_check_mark: "✅", heavy_check_mark: "✔️", warning: "⚠️", x: "❌", hourglass: "⌛",
  hourglass_flowing_sand: "⏳", inbox_tray: "📥", outbox_tray: "📤", page_facing_up: "📄", calendar: "📆",
  date: "📅", spiral_calendar_pad: "🗓️", recycle: "♻️", arrows_counterclockwise: "🔄", zzz: "💤",
  no_entry_sign: "🚫", no_entry: "⛔", newspaper: "📰", money_with_wings: "💸", moneybag: "💰",
  double_vertical_bar: "⏸️", black_square_for_stop: "⏹️", stop_button: "⏹️", octagonal_sign: "🛑",
  stopwatch: "⏱️", timer_clock: "⏲️", alarm_clock: "⏰", bar_chart: "📊", chart_with_upwards_trend: "📈",
  chart_with_downwards_trend: "📉", information_source: "ℹ️", bulb: "💡", mag: "🔍", robot_face: "🤖",
  wave: "👋", tada: "🎉", "+1": "👍", thumbsup: "👍", "-1": "👎", thumbsdown: "👎", thinking_face: "🤔",
  gear: "⚙️", lock: "🔒", key: "🔑", package: "📦", link: "🔗", pushpin: "📌", rocket: "🚀", fire: "🔥",
  star: "⭐", sparkles: "✨", question: "❓", exclamation: "❗", heavy_plus_sign: "➕", arrow_right: "➡️",
  arrow_up: "⬆️", arrow_down: "⬇️", hammer_and_wrench: "🛠️", file_folder: "📁", open_file_folder: "📂",
  clipboard: "📋", memo: "📝", pencil: "📝", scroll: "📜", broom: "🧹", floppy_disk: "💾", construction: "🚧",
  white_circle: "⚪", red_circle: "🔴", large_green_circle: "🟢", large_yellow_circle: "🟡", speech_balloon: "💬",
  busts_in_silhouette: "👥", bust_in_silhouette: "👤", hourglass_done: "⌛", repeat: "🔁", clock9: "🕘",
  mailbox: "📫", heavy_minus_sign: "➖", small_red_triangle_down: "🔻", small_red_triangle: "🔺",
};

// Code spans and <control sequences> are taken out first (as Slack does), so an underscore in `OPENAI_API_KEY` or
// in a link never ends an _italic_ run around it; they come back as elements when the text is emitted.
const ATOMS = /`([^`\n]+)`|<([^<>\n]+)>/g;
const SLOT = /\uE000(\d+)\uE001/g;
const FORMAT = new RegExp([
  ":([a-z0-9_+'-]+):",                                                    // 1 emoji
  "(?<![\\p{L}\\p{N}*])\\*(?=\\S)([^*\\n]*?\\S)\\*(?![\\p{L}\\p{N}*])",   // 2 bold
  "(?<![\\p{L}\\p{N}_])_(?=\\S)([^_\\n]*?\\S)_(?![\\p{L}\\p{N}_])",        // 3 italic
  "(?<![\\p{L}\\p{N}~])~(?=\\S)([^~\\n]*?\\S)~(?![\\p{L}\\p{N}~])",        // 4 strike
].join("|"), "gu");

export function unescapeSlack(text) {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

// An element with a class and text content (text is never parsed as HTML).
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function control(body, ctx) {
  const [target, label] = splitOnce(body, "|");
  if (target.startsWith("@")) {
    const name = label || ctx.userName(target.slice(1));
    return el("span", "mention", `@${name}`);
  }
  if (target.startsWith("#")) return el("span", "mention", `#${label || target.slice(1)}`);
  if (target.startsWith("!")) {
    const word = target.slice(1).split("^")[0];
    if (["here", "channel", "everyone"].includes(word)) return el("span", "mention", `@${word}`);
    return document.createTextNode(unescapeSlack(label || word));
  }
  const url = unescapeSlack(target);
  if (/^(https?:|mailto:)/i.test(url)) {
    const a = el("a", "link", unescapeSlack(label || target));
    a.href = url;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    return a;
  }
  return document.createTextNode(unescapeSlack(label || target));
}

function splitOnce(text, separator) {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
}

export function emojiNode(name) {
  const glyph = EMOJI[name];
  if (!glyph) return null;
  const span = el("span", "emoji", glyph);
  span.setAttribute("role", "img");
  span.setAttribute("aria-label", name.replace(/_/g, " "));
  span.title = `:${name}:`;
  return span;
}

export function renderInline(text, ctx, parent) {
  const atoms = [];
  const slotted = text.replace(/[\uE000\uE001]/g, "").replace(ATOMS, (_, code, body) => {
    atoms.push(code !== undefined ? el("code", "inline-code", unescapeSlack(code)) : control(body, ctx));
    return `\uE000${atoms.length - 1}\uE001`;
  });
  format(slotted, atoms, ctx, parent);
}

function emit(text, atoms, parent) {
  const parts = text.split(SLOT);
  parts.forEach((part, index) => {
    if (index % 2 === 1) parent.append(atoms[Number(part)]);
    else if (part) parent.append(unescapeSlack(part));
  });
}

function format(text, atoms, ctx, parent) {
  const pattern = new RegExp(FORMAT.source, FORMAT.flags);
  let last = 0;
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
    let node;
    if (m[1] !== undefined) {
      node = emojiNode(m[1]);
      if (node === null) {  // ":12:" in "10:12:30" is no emoji: go on one character later
        pattern.lastIndex = m.index + 1;
        continue;
      }
    } else {
      node = el(m[2] !== undefined ? "strong" : m[3] !== undefined ? "em" : "s");
      format(m[2] ?? m[3] ?? m[4], atoms, ctx, node);
    }
    emit(text.slice(last, m.index), atoms, parent);
    parent.append(node);
    last = m.index + m[0].length;
    pattern.lastIndex = last;
  }
  emit(text.slice(last), atoms, parent);
}

function renderLines(text, ctx, parent) {
  const lines = text.split("\n");
  let quote = null;
  let paragraph = null;
  for (const line of lines) {
    const quoted = line.match(/^(?:&gt;|>)\s?(.*)$/);  // Slack quotes either form
    if (quoted) {
      paragraph = null;
      if (!quote) quote = parent.appendChild(el("blockquote"));
      else quote.append("\n");
      renderInline(quoted[1], ctx, quote);
      continue;
    }
    quote = null;
    if (!paragraph) paragraph = parent.appendChild(el("div", "text-run"));
    else paragraph.append("\n");
    renderInline(line, ctx, paragraph);
  }
}

export function renderMrkdwn(text, ctx) {
  const out = el("div", "mrkdwn");
  const parts = (text || "").split("```");
  parts.forEach((part, index) => {
    if (index % 2 === 1 && index < parts.length - 1) {
      const pre = el("pre", "code-block");
      pre.append(el("code", "", unescapeSlack(part.replace(/^\n/, "").replace(/\n$/, ""))));
      pre.tabIndex = 0;
      out.append(pre);
    } else {
      const body = index % 2 === 1 ? "```" + part : part;  // an unclosed fence is text
      const trimmed = body.replace(/^\n/, "").replace(/\n$/, "");
      if (trimmed) renderLines(trimmed, ctx, out);
    }
  });
  return out;
}

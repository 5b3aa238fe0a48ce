// Block Kit to DOM: section (text, fields, accessory), actions, context, context actions (feedback and icon
// buttons), header, divider, image, rich_text, markdown, data visualization (chart.js) and data table (table.js)
// blocks. Whatever the bot posts renders generically; a button calls ctx.onAction(action, blockId, button), which
// the page sends as a block_actions payload. Unknown blocks and elements say what they are instead of vanishing.

import { renderChart } from "./chart.js";
import { el, emojiNode, renderMrkdwn } from "./mrkdwn.js";
import { renderDataTable } from "./table.js";

const chosen = new Map();  // feedback buttons' block id -> the value the person chose (kept across re-renders)

export function renderText(obj, ctx) {
  if (!obj) return el("span");
  if (obj.type === "mrkdwn") return renderMrkdwn(obj.text, ctx);
  const span = el("span", "plain-text");  // plain_text: only :emoji: are special
  const parts = (obj.text || "").split(/:([a-z0-9_+'-]+):/);
  parts.forEach((part, index) => {
    if (index % 2 === 0) span.append(part);
    else span.append(emojiNode(part) || `:${part}:`);
  });
  return span;
}

function imageUrl(element) {
  if (element.slack_file && element.slack_file.id) return `/demo/files/${encodeURIComponent(element.slack_file.id)}/image`;
  return element.image_url || "";
}

function renderImage(element, className) {
  const img = el("img", className);
  img.src = imageUrl(element);
  img.alt = element.alt_text || "";
  img.loading = "lazy";
  return img;
}

function renderButton(element, blockId, ctx) {
  const button = el("button", "block-button");
  button.type = "button";
  if (element.style === "primary") button.classList.add("primary");
  if (element.style === "danger") button.classList.add("danger");
  button.append(renderText(element.text, ctx));
  if (element.accessibility_label) button.setAttribute("aria-label", element.accessibility_label);
  if (element.url) {
    const link = el("a", button.className);
    link.href = element.url;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    link.append(...button.childNodes);
    return link;
  }
  button.addEventListener("click", () => ctx.onAction(element, blockId, button));
  return button;
}

// Slack's feedback buttons (👍 / 👎): each a toggle that sends its own value; the one chosen stays pressed.
function renderFeedback(element, blockId, ctx) {
  const group = el("div", "feedback-buttons");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Feedback");
  const key = `${blockId}/${element.action_id || ""}`;
  const buttons = [];
  for (const side of ["positive_button", "negative_button"]) {
    const spec = element[side] || {};
    const button = el("button", `feedback-button ${side === "positive_button" ? "positive" : "negative"}`);
    button.type = "button";
    button.append(renderText(spec.text, ctx));
    button.setAttribute("aria-label", spec.accessibility_label || spec.text?.text || side);
    button.title = spec.accessibility_label || "";
    button.setAttribute("aria-pressed", String(chosen.get(key) === spec.value));
    button.addEventListener("click", () => {
      chosen.set(key, spec.value);
      for (const other of buttons) other.setAttribute("aria-pressed", String(other === button));
      ctx.onAction({ type: "feedback_buttons", action_id: element.action_id, value: spec.value || "",
        text: spec.text }, blockId, button);
    });
    buttons.push(button);
    group.append(button);
  }
  return group;
}

function renderIconButton(element, blockId, ctx) {
  const button = el("button", "block-button icon-button");
  button.type = "button";
  button.append(renderText(element.text, ctx));
  if (element.accessibility_label) button.setAttribute("aria-label", element.accessibility_label);
  button.addEventListener("click", () => ctx.onAction({ ...element, type: "icon_button" }, blockId, button));
  return button;
}

function renderElement(element, blockId, ctx) {
  switch (element.type) {
    case "button": return renderButton(element, blockId, ctx);
    case "feedback_buttons": return renderFeedback(element, blockId, ctx);
    case "icon_button": return renderIconButton(element, blockId, ctx);
    case "image": return renderImage(element, "block-image-small");
    case "mrkdwn": case "plain_text": return renderText(element, ctx);
    default: return el("span", "unsupported", `[${element.type} is not shown in the demo]`);
  }
}

function renderRichText(block, ctx) {
  const out = el("div", "rich-text");
  for (const section of block.elements || []) {
    const part = el(section.type === "rich_text_preformatted" ? "pre" : "div",
      section.type === "rich_text_preformatted" ? "code-block" : "text-run");
    for (const item of section.elements || []) {
      if (item.type === "text") part.append(item.text || "");
      else if (item.type === "link") {
        const a = el("a", "link", item.text || item.url);
        a.href = /^https?:/i.test(item.url || "") ? item.url : "#";
        a.rel = "noopener noreferrer";
        a.target = "_blank";
        part.append(a);
      } else if (item.type === "emoji") part.append(emojiNode(item.name) || `:${item.name}:`);
      else if (item.type === "user") part.append(el("span", "mention", `@${ctx.userName(item.user_id)}`));
    }
    out.append(part);
  }
  return out;
}

function renderBlock(block, ctx) {
  const blockId = block.block_id || "";
  switch (block.type) {
    case "section": {
      const section = el("div", "block-section");
      const main = el("div", "block-section-main");
      if (block.text) main.append(renderText(block.text, ctx));
      if (block.fields) {
        const fields = el("div", "block-fields");
        for (const field of block.fields) fields.append(renderText(field, ctx));
        main.append(fields);
      }
      section.append(main);
      if (block.accessory) {
        const accessory = el("div", "block-accessory");
        accessory.append(renderElement(block.accessory, blockId, ctx));
        section.append(accessory);
      }
      return section;
    }
    case "actions": {
      const actions = el("div", "block-actions");
      for (const element of block.elements || []) actions.append(renderElement(element, blockId, ctx));
      return actions;
    }
    case "context_actions": {
      const actions = el("div", "block-context-actions");
      for (const element of block.elements || []) actions.append(renderElement(element, blockId, ctx));
      return actions;
    }
    case "data_visualization": return renderChart(block);
    case "data_table": return renderDataTable(block);
    case "context": {
      const context = el("div", "block-context");
      for (const element of block.elements || []) context.append(renderElement(element, blockId, ctx));
      return context;
    }
    case "header": {
      const header = el("h3", "block-header");
      header.append(renderText(block.text, ctx));
      return header;
    }
    case "divider": return el("hr", "block-divider");
    case "image": {
      const figure = el("figure", "block-image");
      figure.append(renderImage(block, ""));
      if (block.title) {
        const caption = el("figcaption");
        caption.append(renderText(block.title, ctx));
        figure.append(caption);
      }
      return figure;
    }
    case "rich_text": return renderRichText(block, ctx);
    case "markdown": return renderMrkdwn(block.text || "", ctx);
    default: return el("p", "unsupported", `[a ${block.type} block is not shown in the demo]`);
  }
}

export function renderBlocks(blocks, ctx) {
  const out = el("div", "blocks");
  for (const block of blocks) out.append(renderBlock(block, ctx));
  return out;
}

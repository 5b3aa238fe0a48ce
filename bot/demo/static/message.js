// One message as Slack shows it: author, time, mrkdwn text or Block Kit blocks, files (charts inline, several as a
// gallery), reactions, the "Only visible to you" note of an ephemeral and, in the channel, the thread's replies.
// What a message does (open its thread, dismiss it, press its buttons) comes in through `hooks`.

import { renderBlocks } from "./blocks.js";
import { el, emojiNode, renderMrkdwn } from "./mrkdwn.js";

function tsDate(ts) {
  return new Date(parseFloat(ts) * 1000);
}

function timeLabel(ts) {
  return tsDate(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function sizeLabel(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function renderFiles(files, hooks) {
  const list = el("div", "files");
  if (files.filter((file) => file.image).length > 1) list.classList.add("gallery");
  for (const file of files) {
    if (file.image) {
      const figure = el("figure", "file-image");
      const link = el("a");
      link.href = file.url;
      link.target = "_blank";
      link.rel = "noopener";
      const img = el("img");
      img.src = file.url;
      img.alt = `Chart: ${file.title}`;
      img.addEventListener("load", () => hooks.onImageLoad(figure));
      link.append(img);
      figure.append(link, el("figcaption", "", file.title));
      list.append(figure);
    } else {
      const card = el("a", "file-card");
      card.href = file.url;
      card.setAttribute("download", file.name);
      const icon = el("span", "file-icon", (file.filetype || "file").slice(0, 4).toUpperCase());
      icon.setAttribute("aria-hidden", "true");
      const text = el("span", "file-text");
      text.append(el("span", "file-name", file.name),
        el("span", "file-meta", `${sizeLabel(file.size)} · ${file.filetype ? file.filetype.toUpperCase() : file.mimetype}`));
      card.append(icon, text);
      card.setAttribute("aria-label", `Download ${file.name}, ${sizeLabel(file.size)}`);
      list.append(card);
    }
  }
  return list;
}

function renderReactions(reactions) {
  const list = el("ul", "reactions");
  list.setAttribute("aria-label", "Reactions");
  for (const reaction of reactions) {
    const item = el("li", "reaction");
    item.append(emojiNode(reaction.name) || `:${reaction.name}:`, el("span", "reaction-count", String(reaction.count)));
    item.title = `:${reaction.name}: by datastory`;
    list.append(item);
  }
  return list;
}

export function renderMessage(view, { continued, inChannel }, hooks) {
  const article = el("article", "message");
  article.dataset.key = view.key;
  if (view.author.bot) article.classList.add("from-bot");
  if (view.ephemeral) article.classList.add("ephemeral");
  if (continued) article.classList.add("continued");
  const avatar = el("div", "avatar", view.author.name.slice(0, 1).toUpperCase());
  avatar.setAttribute("aria-hidden", "true");
  const body = el("div", "message-body");
  const meta = el("div", "message-meta");
  const author = el("span", "author", view.author.name);
  const time = el("time", "time", timeLabel(view.ts));
  time.dateTime = tsDate(view.ts).toISOString();
  meta.append(author);
  if (view.author.bot) meta.append(el("span", "app-badge", "APP"));
  meta.append(time);
  if (view.edited) meta.append(el("span", "edited", "(edited)"));
  body.append(meta);
  if (view.ephemeral) {
    const note = el("p", "only-you");
    note.append(el("span", "", "Only visible to you"));
    const dismiss = el("button", "link-button", "Dismiss");
    dismiss.type = "button";
    dismiss.addEventListener("click", () => hooks.onDismiss(view.key));
    note.append(dismiss);
    body.append(note);
  }
  if (view.blocks && view.blocks.length) body.append(renderBlocks(view.blocks, hooks.ctx));
  else if (view.text) body.append(renderMrkdwn(view.text, hooks.ctx));
  if (view.files.length) body.append(renderFiles(view.files, hooks));
  if (view.reactions.length) body.append(renderReactions(view.reactions));
  if (inChannel && view.reply_count > 0) {
    const replies = el("button", "replies-button");
    replies.type = "button";
    replies.append(el("span", "replies-count", `${view.reply_count} ${view.reply_count === 1 ? "reply" : "replies"}`),
      el("span", "replies-last", `Last reply ${timeLabel(view.last_reply)}`));
    replies.setAttribute("aria-label", `${view.reply_count} ${view.reply_count === 1 ? "reply" : "replies"}: open the thread`);
    replies.addEventListener("click", () => hooks.onOpenThread(view.ts));
    body.append(replies);
  }
  article.append(avatar, body);
  article.setAttribute("aria-label", `${view.author.name} at ${timeLabel(view.ts)}`);
  return article;
}

// The community feed card (#posts): the composer (name, text, attachments) and the posts,
// each `.post[data-author][data-id]` (DESIGN section 9) with its author's chosen name and
// short id; our own posts can be edited and deleted (new signed entries of our log).
import { $, ago, avatar, bytes, clip, el, linkified, localTime, patch, short } from "./dom.js";
import { MAX_TEXT_BYTES } from "../protocol/posts.js";

const utf8 = new TextEncoder();
const REFRESH_MS = 15_000; // relative times

export class FeedUI {
  constructor({ peer, posts, files }) {
    this.peer = peer;
    this.posts = posts;
    this.files = files;
    this.attachments = []; // manifest ids of files shared for the post being written
    this.editing = null;
  }

  mount() {
    $("posts").hidden = false;
    const name = $("post-name");
    name.value = this.posts.name;
    name.addEventListener("change", () => this.posts.setName(name.value.trim()));
    $("post-self").textContent = short(this.peer.peerId);
    const text = $("post-text");
    text.addEventListener("input", () => this.#count());
    text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("post-form").requestSubmit();
    });
    $("post-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#send();
    });
    $("post-attach").addEventListener("change", async (e) => {
      const input = e.currentTarget;
      for (const file of [...input.files]) await this.#attach(file);
      input.value = "";
    });
    this.posts.addEventListener("change", () => this.render());
    setInterval(() => this.render(), REFRESH_MS);
    this.#count();
    this.render();
  }

  #count() {
    const n = utf8.encode($("post-text").value).length;
    const counter = $("post-count");
    counter.textContent = `${n} / ${MAX_TEXT_BYTES}`;
    counter.classList.toggle("over", n > MAX_TEXT_BYTES);
  }

  #status(message, isError = false) {
    const status = $("post-status");
    status.textContent = message;
    status.classList.toggle("error", isError);
  }

  // An attachment is a shared file: its manifest id goes in the post, its link (with the key)
  // in the text, so everyone who can read the post can open it.
  async #attach(file) {
    this.#status(`Encrypting ${file.name}…`);
    try {
      const record = await this.files.share(file);
      this.attachments.push(record.id);
      const text = $("post-text");
      text.value = `${text.value}${text.value && !text.value.endsWith("\n") ? "\n" : ""}File ${record.name}: ${this.files.shareLink(record)}`;
      this.#count();
      this.#chips();
      this.#status("");
    } catch (error) {
      this.#status(error.message, true);
    }
  }

  #chips() {
    $("post-attachments").replaceChildren(
      ...this.attachments.map((id) => {
        const record = this.files.files.get(id);
        return el(
          "span",
          { class: "chip attachment" },
          clip(),
          record?.name ?? id.slice(0, 8),
          el("button", { type: "button", class: "chip-x", title: "Remove", onclick: () => this.#detach(id) }, "×"),
        );
      }),
    );
  }

  #detach(id) {
    this.attachments = this.attachments.filter((a) => a !== id);
    this.#chips();
  }

  async #send() {
    const text = $("post-text").value.trim();
    if (!text && this.attachments.length === 0) return;
    const button = $("post-send");
    button.disabled = true;
    try {
      if (this.editing) await this.posts.edit(this.editing, text);
      else await this.posts.post(text, this.attachments);
      $("post-text").value = "";
      this.attachments = [];
      this.editing = null;
      $("post-send").textContent = "Post";
      this.#chips();
      this.#count();
      this.#status("");
    } catch (error) {
      this.#status(`${error.code ?? "error"}: ${error.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  #edit(post) {
    this.editing = post.id;
    $("post-text").value = post.text;
    $("post-send").textContent = "Save edit";
    this.#status("Editing your post: peers keep both versions in your log.");
    this.#count();
    $("post-text").focus();
  }

  render() {
    const posts = this.posts.posts();
    const now = this.peer.clock();
    $("post-total").textContent =
      `${posts.length} post${posts.length === 1 ? "" : "s"} · ${this.posts.sync.logs.size} author${this.posts.sync.logs.size === 1 ? "" : "s"}`;
    $("posts-empty").hidden = posts.length > 0;
    patch($("post-list"), [...this.posts.forks.map((fork) => this.#fork(fork, now)), ...posts.map((post) => this.#post(post, now))]);
  }

  // A fork: the author signed two entries for one place in its log (two devices writing while
  // apart). The feed follows the first it saw and says so, with what the other entry said.
  #fork(fork, now) {
    const who = fork.author === this.peer.peerId ? "You (another device)" : short(fork.author);
    return el(
      "li",
      { class: "post-fork", "data-author": fork.author, "data-seq": fork.seq },
      el("b", {}, "Fork: "),
      `${who} signed two different entries at #${fork.seq}; this feed follows the first one it saw (${ago(fork.at, now)}).`,
      fork.otherText !== null ? el("div", { class: "post-text muted" }, "The other one said: ", fork.otherText || "(no text)") : null,
    );
  }

  #post(post, now) {
    const mine = post.author === this.peer.peerId;
    const name = post.name || "anonymous";
    const head = el(
      "div",
      { class: "post-head" },
      avatar(post.author, post.name),
      el("b", { class: "post-name" }, name),
      el("span", { class: "post-author mono", title: post.author }, short(post.author)),
      el("time", { datetime: new Date(post.createdAt).toISOString(), title: localTime(post.createdAt) }, ago(post.createdAt, now)),
      post.editedAt ? el("span", { class: "edited", title: `edited ${localTime(post.editedAt)}` }, "edited") : null,
      mine
        ? el(
            "span",
            { class: "post-actions" },
            el("button", { type: "button", class: "btn tiny edit", onclick: () => this.#edit(post) }, "Edit"),
            el("button", { type: "button", class: "btn tiny danger delete", onclick: () => this.posts.remove(post.id) }, "Delete"),
          )
        : null,
    );
    const attachments = post.attachments.length
      ? el(
          "div",
          { class: "post-attachments" },
          ...post.attachments.map((id) => {
            const record = this.files.files.get(id);
            const label = record?.name ? `${record.name} · ${bytes(record.size)}` : `file ${id.slice(0, 10)}…`;
            return el("span", { class: "chip attachment", "data-manifest-id": id, title: id }, clip(), label);
          }),
        )
      : null;
    return el(
      "li",
      { class: `post${mine ? " mine" : ""}`, "data-author": post.author, "data-id": post.id },
      head,
      post.text ? el("div", { class: "post-text" }, ...linkified(post.text)) : null,
      attachments,
    );
  }
}

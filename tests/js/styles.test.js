// The page's styles: nothing animates while files move (docs/browser.md "Serving": each
// animated frame is main-thread painting, and the main threads limit a transfer).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const css = readFileSync(new URL("../../static/swarm/swarm.css", import.meta.url), "utf8");

function rules(selectorPart) {
  const out = [];
  for (const match of css.matchAll(/([^{}]+)\{([^}]*)\}/g)) {
    const selector = match[1].trim();
    if (selector.split(",").some((s) => s.trim().startsWith(selectorPart))) out.push([selector, match[2]]);
  }
  return out;
}

test("the progress bars neither animate nor transition", () => {
  const bars = rules(".bar");
  assert.ok(bars.length >= 5, "the bar rules are found");
  for (const [selector, body] of bars) {
    assert.doesNotMatch(body, /\b(animation|transition)\s*:/, `${selector} animates`);
  }
});

test("no infinite animation anywhere in the page's styles", () => {
  assert.doesNotMatch(css, /animation[^;]*infinite/);
});

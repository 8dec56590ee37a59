// What this browser keeps for the swarm (docs/replication.md "Browser"), pure: no DOM, no
// IndexedDB, no clock. Files it shared are always kept and advertised as replicas. A file it
// downloaded is advertised as a replica (`keep` true) only when the person opted in ("keep
// copies for the swarm", off by default) and it fits the storage budget; otherwise it is
// advertised as a cached copy (`keep` false: a source, never counted as a replica).
// Within the budget, the oldest kept downloads win: a download that would go past it is
// refused (not kept), with a message saying why; nothing is ever deleted to make room.
// A copy kept for the swarm without a key (role SWARM_ROLE, fetched by repair: content/repair.js)
// is a download here like any other: counted in the budget, kept or refused the same way.
import { TAG_BYTES } from "../protocol/chunks.js";

export const KEEP_SETTING = "keepForSwarm"; // settings key: { keep, budget }
export const DEFAULT_BUDGET = 1_000_000_000; // bytes (1 GB)
export const MAX_BUDGET = 1e15; // 1 PB: any larger number is a typo
export const KEEP_DEFAULTS = Object.freeze({ keep: false, budget: DEFAULT_BUDGET });
// The role of a record kept for the swarm without a key (a repair copy, content/repair.js):
// ciphertext fetched, stored, advertised and served like a download's, never opened.
export const SWARM_ROLE = "swarm";

export class KeepError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "KeepError";
    this.code = code;
  }
}

const validBudget = (budget) => Number.isSafeInteger(budget) && budget >= 0 && budget <= MAX_BUDGET;
const mb = (n) => `${(Math.max(0, n) / 1e6).toFixed(1)} MB`;

/** The keep settings as stored (anything malformed falls back to the defaults). */
export function keepSettings(settings) {
  const stored = settings?.[KEEP_SETTING];
  const keep = typeof stored?.keep === "boolean" ? stored.keep : KEEP_DEFAULTS.keep;
  const budget = validBudget(stored?.budget) ? stored.budget : KEEP_DEFAULTS.budget;
  return { keep, budget };
}

/** Checked settings from the UI: `keep` a boolean, `budget` whole bytes in 0..MAX_BUDGET. */
export function checkKeep({ keep, budget }) {
  if (typeof keep !== "boolean") throw new KeepError("bad_keep", "keep must be true or false");
  if (!validBudget(budget)) {
    throw new KeepError("bad_budget", `the storage budget must be a whole number of bytes from 0 to ${MAX_BUDGET}`);
  }
  return { keep, budget };
}

/** A budget typed in megabytes ("500", "2.5") as bytes; KeepError(bad_budget) otherwise. */
export function parseBudgetMb(text) {
  const s = String(text ?? "").trim();
  if (!/^\d{1,10}(\.\d{1,6})?$/.test(s)) throw new KeepError("bad_budget", "the storage budget must be a number of megabytes, like 500 or 2.5");
  return checkKeep({ keep: false, budget: Math.round(Number(s) * 1e6) }).budget;
}

/** What one complete copy occupies in the store: the ciphertext (plaintext + a tag per chunk). */
export function storedSize(record) {
  return (record.size ?? 0) + TAG_BYTES * (record.chunkCount ?? 0);
}

const isDownload = (record) => record.role !== "shared";
const complete = (record) => record.state === "complete" && Boolean(record.envelope);

/**
 * Which complete downloads are kept for the swarm: { kept: Set of ids, refused: Map id ->
 * message, used: bytes the kept ones occupy, budget, keep }. Oldest first (`addedAt`, then
 * id): a download is kept when it fits what is left of the budget, else refused.
 */
export function keepPlan(records, settings) {
  const { keep, budget } = settings;
  const kept = new Set();
  const refused = new Map();
  let used = 0;
  if (!keep) return { kept, refused, used, budget, keep };
  const candidates = [...records].filter((r) => isDownload(r) && complete(r));
  candidates.sort((a, b) => (a.addedAt ?? 0) - (b.addedAt ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const record of candidates) {
    const size = storedSize(record);
    if (used + size <= budget) {
      kept.add(record.id);
      used += size;
    } else {
      refused.set(record.id, `not kept for the swarm: it needs ${mb(size)}, ${mb(budget - used)} of the ${mb(budget)} budget is free`);
    }
  }
  return { kept, refused, used, budget, keep };
}

/** The `have` entry for a record ({id, chunks} or {id, chunks, keep: false}), or null. */
export function advertFor(record, plan, maxChunks = Infinity) {
  if (!record.envelope || !(record.held > 0)) return null;
  const chunks = Math.min(record.held, maxChunks);
  if (!isDownload(record) || plan.kept.has(record.id)) return { id: record.id, chunks };
  return { id: record.id, chunks, keep: false };
}

/** Whether `record` is kept for the swarm without a key (a repair copy). */
export const isKeyless = (record) => record?.role === SWARM_ROLE;

/** How a record stands: "own" (shared), "kept", "refused", "cached" (opt-in off or not complete). */
export function keepState(record, plan) {
  if (!isDownload(record)) return "own";
  if (plan.kept.has(record.id)) return "kept";
  if (plan.refused.has(record.id)) return "refused";
  return "cached";
}

/** The keep settings and the plan they give, for the file service (still pure: records come in). */
export class Keeper {
  constructor() {
    this.settings = keepSettings({}); // { keep, budget }
    this.plan = keepPlan([], this.settings);
  }

  /** From the peer's stored settings and the file records. */
  load(settings, records) {
    this.settings = keepSettings(settings);
    this.plan = keepPlan(records, this.settings);
  }

  /** New settings from the UI, checked (KeepError): the caller saves them and replans. */
  set(changes) {
    this.settings = checkKeep({ ...this.settings, ...changes });
    return this.settings;
  }

  /**
   * Recompute the plan from `records`: { changed: ids (of `records`) whose advert changes,
   * refused: [[id, message]] downloads refused now that were not before }.
   */
  replan(records) {
    const list = [...records];
    const present = new Set(list.map((r) => r.id));
    const before = this.plan;
    this.plan = keepPlan(list, this.settings);
    const changed = [...new Set([...before.kept, ...this.plan.kept])].filter((id) => before.kept.has(id) !== this.plan.kept.has(id) && present.has(id));
    const refused = [...this.plan.refused].filter(([id]) => !before.refused.has(id));
    return { changed, refused };
  }

  /** { state: keepState(record), message: why it was refused, or null }. */
  stateOf(record) {
    return { state: keepState(record, this.plan), message: this.plan.refused.get(record.id) ?? null };
  }

  /** The `have` entry of `record` under the current plan, or null. */
  advertFor(record, maxChunks) {
    return advertFor(record, this.plan, maxChunks);
  }
}

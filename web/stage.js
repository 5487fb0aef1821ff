// What the video area shows: the layout (a stage with a strip of thumbnails, or a grid in pages), what is on the
// stage (a moderator's spotlight, one's own pin, a shared screen, the active speaker), and which tiles are really
// on screen, so that an sfu room receives video only for those (and in the size they are shown at).
//
// The rules are pure functions of plain data (`arrange`) plus two small stateful helpers: `ActiveSpeaker` (who the
// stage follows, held for a moment so it does not flicker between two people talking over each other) and
// `Visibility` (an IntersectionObserver: a tile scrolled out of the strip, on another page or hidden is not seen).

export const GRID = "grid";
export const STAGE = "stage";

export const SPEAKER_HOLD_MS = 1500; // the stage stays this long on a speaker before it follows someone else
const PHONE_WIDTH_PX = 600;
const TABLET_WIDTH_PX = 1000;
export const PAGE_SIZE_LAPTOP = 16;
export const PAGE_SIZE_TABLET = 9;
export const PAGE_SIZE_PHONE = 6;
// What one viewer may receive at once (the server's cap, signaling/sfu/bridge.py): one video at the high layer and
// fifteen at a smaller one. The client asks for no more; the server would clamp it anyway.
export const MAX_HIGH_VIDEOS = 1;
export const MAX_OTHER_VIDEOS = 15;

/** Tiles a grid page holds in a window this wide (a test may override it). */
export function pageSizeFor(widthPx) {
  if (widthPx < PHONE_WIDTH_PX) return PAGE_SIZE_PHONE;
  return widthPx < TABLET_WIDTH_PX ? PAGE_SIZE_TABLET : PAGE_SIZE_LAPTOP;
}

/** Columns of a grid page of `count` tiles: as square as the area allows (narrow: the panel is below it). */
export function columnsFor(count, narrow) {
  if (narrow) return count <= 1 ? 1 : count <= 6 ? 2 : 3;
  if (count <= 1) return 1;
  if (count <= 4) return 2;
  if (count <= 9) return 3;
  return 4;
}

/**
 * The simulcast layer that fits a tile of this many device pixels across (Janus substreams: the publisher sends
 * full, half and quarter size).
 */
export function qualityFor(widthPx) {
  if (widthPx >= 560) return "high";
  if (widthPx >= 240) return "medium";
  return "low";
}

/**
 * Lay the tiles out.
 *
 * @param {object} p
 * @param {{id: string, peerId: string, kind: "self"|"camera"|"screen"}[]} p.tiles in display order, ours first
 * @param {"grid"|"stage"|null} p.chosen the viewer's own choice, null: the default
 * @param {string|null} p.pinned a tile id the viewer pinned
 * @param {string|null} p.spotlight the peer id a moderator put on everyone's stage
 * @param {string|null} p.speaker the active speaker (a peer id, never our own)
 * @param {number} p.page the grid page asked for (clamped)
 * @param {number} p.pageSize tiles a grid page holds
 * @returns {{layout: string, main: string|null, beside: string|null, strip: string[], grid: string[],
 *   page: number, pages: number, reason: string}}
 */
export function arrange({ tiles, chosen, pinned, spotlight, speaker, page, pageSize }) {
  const byId = new Map(tiles.map((tile) => [tile.id, tile]));
  const cameraOf = (peerId) => tiles.find((tile) => tile.peerId === peerId && tile.kind !== "screen") || null;
  const screen = tiles.find((tile) => tile.kind === "screen") || null;
  const spotlit = spotlight ? cameraOf(spotlight) : null;
  const pin = pinned && byId.has(pinned) ? byId.get(pinned) : null;

  let layout;
  if (spotlit) layout = STAGE; // a moderator's spotlight is on everyone's stage
  else if (chosen) layout = chosen;
  else layout = pin || screen ? STAGE : GRID;

  // One's own tile is on every grid page (people keep seeing themselves), the others fill the rest of it: a page of
  // sixteen on a laptop is oneself and fifteen others, within the server's cap of video per viewer.
  const own = tiles.find((tile) => tile.kind === "self") || null;
  const others = own ? tiles.filter((tile) => tile !== own) : tiles;
  const perPage = Math.max(1, own ? pageSize - 1 : pageSize);
  const pages = Math.max(1, Math.ceil(others.length / perPage));
  const current = Math.min(Math.max(0, page), pages - 1);
  if (layout === GRID) {
    const shown = others.slice(current * perPage, (current + 1) * perPage);
    const grid = (own ? [own, ...shown] : shown).map((tile) => tile.id);
    return { layout, main: null, beside: null, strip: [], grid, page: current, pages, reason: "grid" };
  }

  let main = null;
  let reason = "";
  if (spotlit) [main, reason] = [spotlit, "spotlight"];
  else if (pin) [main, reason] = [pin, "pinned"];
  else if (screen) [main, reason] = [screen, "screen"];
  else if (speaker && cameraOf(speaker)) [main, reason] = [cameraOf(speaker), "speaker"];
  else {
    main = tiles.find((tile) => tile.kind !== "self") || tiles[0] || null;
    reason = "first";
  }
  // A shared screen keeps its presenter's camera beside it.
  const beside = main && main.kind === "screen" ? cameraOf(main.peerId) : null;
  const strip = tiles.filter((tile) => tile !== main && tile !== beside).map((tile) => tile.id);
  return {
    layout,
    main: main ? main.id : null,
    beside: beside ? beside.id : null,
    strip,
    grid: [],
    page: current,
    pages,
    reason,
  };
}

/**
 * Who the stage follows. A new speaker takes the stage at once when it has been on the current one for at least
 * `holdMs`, otherwise when that time is up (if they still speak). When nobody speaks, the last speaker stays.
 */
export class ActiveSpeaker {
  constructor({ holdMs = SPEAKER_HOLD_MS, onChange = () => {}, now = () => performance.now() } = {}) {
    Object.assign(this, { holdMs, onChange, now });
    this.current = null;
    this.since = -Infinity;
    this.order = []; // peer ids speaking now, the most recent last
    this.timer = null;
  }

  /** The set of peers speaking now (never include our own id: the stage never follows oneself). */
  update(speaking) {
    this.order = this.order.filter((id) => speaking.has(id));
    for (const id of speaking) if (!this.order.includes(id)) this.order.push(id);
    this._decide();
  }

  /** A peer left: forget it. */
  forget(peerId) {
    this.order = this.order.filter((id) => id !== peerId);
    if (this.current === peerId) {
      this.current = null;
      this.since = -Infinity;
      this._decide();
      this.onChange(this.current);
    }
  }

  reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.current = null;
    this.since = -Infinity;
    this.order = [];
  }

  _decide() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.order.length || this.order.includes(this.current)) return;
    const wait = this.since + this.holdMs - this.now();
    if (wait > 0) {
      this.timer = setTimeout(() => this._decide(), wait);
      return;
    }
    this.current = this.order[this.order.length - 1];
    this.since = this.now();
    this.onChange(this.current);
  }
}

/**
 * Which tiles are on screen now: intersecting the viewport (a scrolled-out strip thumbnail, a tile of another
 * page or a hidden one is not), reported once a frame settles; a tile that changes size is reported too (it may
 * need another simulcast layer).
 */
export class Visibility {
  constructor(onChange) {
    this.visible = new Set();
    this.onChange = onChange;
    this.timer = null;
    this.observer =
      typeof IntersectionObserver === "function"
        ? new IntersectionObserver((entries) => {
            for (const entry of entries) {
              const id = entry.target.dataset.tileId;
              if (entry.isIntersecting && !entry.target.hidden) this.visible.add(id);
              else this.visible.delete(id);
            }
            this._changed();
          })
        : null;
    this.sizes = typeof ResizeObserver === "function" ? new ResizeObserver(() => this._changed()) : null;
  }

  observe(el) {
    if (this.observer) this.observer.observe(el);
    else this.visible.add(el.dataset.tileId);
    if (this.sizes) this.sizes.observe(el);
  }

  unobserve(el) {
    if (this.observer) this.observer.unobserve(el);
    if (this.sizes) this.sizes.unobserve(el);
    this.visible.delete(el.dataset.tileId);
    this._changed();
  }

  has(id) {
    return this.visible.has(id);
  }

  _changed() {
    // Page turns and layout switches move many tiles at once: one report for them all.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onChange(), 120);
  }
}

// Simultaneous interpretation in the browser (docs/interpretation-browser.md; the protocol is docs/protocol.md,
// "Interpretation"). A room with interpretation has language channels: each is the audio feed of its live
// interpreter, forwarded by the SFU. A listener chooses one (or the original, the floor); they hear the channel at
// full volume and the floor underneath at a level of their own (20 % unless they set another), lowered to half of
// that while the channel's interpreter speaks. A chosen channel without a live interpreter falls back to the
// original and says so. An interpreter has a booth: the direction of their pair and whether they are live.
//
// This module holds the rules (what to hear, at which gain, what to subscribe to) and what is remembered; join.js
// draws them and applies them to the page's media elements.

export const DEFAULT_FLOOR_LEVEL = 0.2; // the floor under a channel, unless the listener set another level
export const DUCK_FACTOR = 0.5; // ... times this while the channel's interpreter speaks

const CHOICE_KEY = "roundtable.listen."; // + workshop id: "original" or a language code
const LEVEL_KEY = "roundtable.floor_level"; // the listener's floor level, 0..1, the same in every workshop

function read(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage can be switched off
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // not remembered, still applied
  }
}

/** The listener's remembered choice in a workshop: a language code, null for the original, undefined: none yet. */
export function storedChoice(workshopId) {
  const value = read(CHOICE_KEY + workshopId);
  if (value === "original") return null;
  return value && /^[a-z]{2,3}$/.test(value) ? value : undefined;
}

export function storeChoice(workshopId, language) {
  write(CHOICE_KEY + workshopId, language || "original");
}

function storedLevel() {
  const value = Number.parseFloat(read(LEVEL_KEY) ?? "");
  return Number.isFinite(value) && value >= 0 && value <= 1 ? value : DEFAULT_FLOOR_LEVEL;
}

/**
 * A language's name in the viewer's language, the code if unknown: capitalised for a label ("Russian", "Русский"),
 * as the language writes it within a sentence ("русский") with `{ inText: true }`.
 */
export function languageName(code, locale, { inText = false } = {}) {
  let name = code;
  try {
    name = new Intl.DisplayNames([locale], { type: "language" }).of(code) || code;
  } catch {
    // an old browser: the code
  }
  return inText ? name : name.charAt(0).toLocaleUpperCase(locale) + name.slice(1);
}

/** The other language of an interpreter's pair. */
export function otherOf(pair, language) {
  return (pair || []).find((l) => l !== language) ?? null;
}

/**
 * The interpretation of the room we are in, as the server last described it (`welcome.interpretation`, the
 * `interpretation` message), and this listener's choice.
 */
export class Interpretation {
  constructor() {
    this.info = null; // {room_id, languages, channels: [{language, live_peer_id, feed_id, interpreters}], listening}
    this.chosen = null; // the language the listener chose, null: the original
    this.level = storedLevel();
    this.selfId = null; // our peer id: an interpreter never hears their own channel
  }

  /** The room has interpretation: channels to choose from (none once its last interpreter went). */
  get enabled() {
    return Boolean(this.info && (this.info.channels || []).length);
  }

  get languages() {
    return this.info ? this.info.languages || [] : [];
  }

  setInfo(info) {
    this.info = info || null;
  }

  /** The listener's choice (null: the original); a language the room does not have is the original. */
  choose(language) {
    this.chosen = language && this.languages.includes(language) ? language : null;
  }

  setLevel(level) {
    this.level = Math.min(1, Math.max(0, Number(level) || 0));
    write(LEVEL_KEY, String(this.level));
  }

  channelOf(language) {
    if (!this.info || !language) return null;
    return (this.info.channels || []).find((c) => c.language === language) || null;
  }

  /** A channel with a live interpreter whose feed is published. */
  isLive(language) {
    const channel = this.channelOf(language);
    return Boolean(channel && channel.live_peer_id && channel.feed_id);
  }

  /** A channel someone else is live in (an interpreter does not hear themselves). */
  audible(language) {
    return this.isLive(language) && this.channelOf(language).live_peer_id !== this.selfId;
  }

  /** The language heard now: the chosen one when it has a live interpreter, else null (the original). */
  hearing() {
    return this.enabled && this.chosen && this.audible(this.chosen) ? this.chosen : null;
  }

  /** A channel was chosen and has no live interpreter: the listener hears the original, and is told so. */
  fallingBack() {
    return this.enabled && Boolean(this.chosen) && !this.audible(this.chosen);
  }

  /** The live interpreter of the channel heard now (null when the original is heard). */
  livePeer() {
    const language = this.hearing();
    return language ? this.channelOf(language).live_peer_id : null;
  }

  /** Whether the floor is lowered further now: the channel's interpreter is speaking. */
  ducked(speaking) {
    const peer = this.livePeer();
    return Boolean(peer && speaking.has(peer));
  }

  /** The floor's gain, 0..1: full on the original, else the listener's level (halved while the interpreter speaks). */
  floorGain(speaking) {
    if (!this.hearing()) return 1;
    return this.ducked(speaking) ? this.level * DUCK_FACTOR : this.level;
  }

  /** The feed id of the channel heard now, or null. */
  channelFeed() {
    const language = this.hearing();
    return language ? this.channelOf(language).feed_id : null;
  }

  /** Whether to receive the audio of an interpretation feed: only the channel heard now. */
  wants(feed) {
    return Boolean(feed.feed_id && feed.feed_id === this.channelFeed());
  }

  /** Peer ids of the room's interpreters, as the channels list them. */
  interpreters() {
    const ids = new Set();
    for (const channel of this.info ? this.info.channels || [] : []) {
      for (const id of channel.interpreters || []) ids.add(id);
      if (channel.live_peer_id) ids.add(channel.live_peer_id);
    }
    return ids;
  }
}

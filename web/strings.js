// Every user-facing string of the browser client, in one place so that it can be translated.
//
// `t(key, params)` looks a string up and fills `{name}` placeholders. Static markup names its strings
// with data attributes (see `applyStrings`): data-i18n (text), data-i18n-label (aria-label),
// data-i18n-placeholder, data-i18n-title. A translation is another entry of STRINGS with the same keys;
// missing keys fall back to English.

export const STRINGS = {
  en: {
    app_name: "Roundtable",

    // Pre-join
    prejoin_heading: "Ready to join?",
    prejoin_loading: "Checking your invitation…",
    prejoin_as: "You are joining as",
    prejoin_workshop: "Workshop",
    prejoin_camera: "Camera",
    prejoin_microphone: "Microphone",
    prejoin_no_device: "None",
    prejoin_preview: "Your camera preview",
    prejoin_media_error: "Camera or microphone not available ({error}). You can still join and watch.",
    prejoin_camera_on: "Camera on",
    prejoin_mic_on: "Microphone on",
    join: "Join",
    joining: "Joining…",

    // Room: header and banners
    room_plenary: "Plenary",
    room_label: "Room: {name}",
    reconnecting: "Connection lost. Reconnecting…",
    reconnecting_attempt: "Connection lost. Reconnecting (attempt {n})…",
    reconnected: "Reconnected.",
    peer_reconnecting: "reconnecting…",
    breakout_time_left: "{name}: {time} left",
    breakout_open_no_deadline: "{name}: open",
    breakout_closing: "Breakout rooms close in {time}",
    breakout_closing_short: "Closing in {time}",
    breakouts_opened: "Breakout rooms are open.",
    breakouts_closed: "Breakout rooms are closed.",
    moved_to_room: "You are now in {room}.",
    moved_back: "You are back in {room}.",
    broadcast_from: "Message from {name}",
    dismiss: "Dismiss",
    muted_by_moderator: "{name} muted your microphone.",
    camera_off_by_moderator: "{name} turned your camera off.",
    hand_lowered: "Your hand was lowered.",
    help_sent: "The moderators have been asked for help.",
    screen_share_failed: "Screen sharing is not available ({error}).",
    device_switch_failed: "Could not switch device ({error}).",
    error_generic: "Something went wrong: {message}",
    sfu_unavailable: "The media server is not reachable. Video and sound come back as soon as it is.",
    sfu_restored: "The media server is back.",
    sfu_publish_denied: "You cannot send video or sound in this room right now.",
    sfu_publish_failed: "Could not send your {source}.",
    source_camera: "camera and microphone",
    source_screen: "screen",
    floor_granted: "{name} gave you the floor: your camera and microphone are on the air.",
    floor_revoked: "{name} took the floor back: you are listening now.",
    media_changed: "This room now sends video through {mode}.",
    media_mode_sfu: "the media server",
    media_mode_mesh: "direct connections",

    // Recording
    recording_indicator: "Recording",
    recording_indicator_label: "This room is being recorded. Change whether you are recorded",
    recording_you_are: "Recording: you are recorded",
    recording_you_are_not: "Recording: you are not recorded",
    consent_explicit_text: "This room is being recorded. Your camera and microphone are recorded only if you agree.",
    consent_assumed_text: "This room is being recorded. You are recorded unless you say no.",
    consent_yes: "Record me",
    consent_ok: "OK",
    consent_no: "Don't record me",
    recording_started: "Recording started.",
    recording_stopped: "Recording stopped.",

    // Room: controls
    controls_label: "Call controls",
    mute: "Mute",
    unmute: "Unmute",
    mic_label_on: "Mute your microphone",
    mic_label_off: "Unmute your microphone",
    camera_off: "Stop video",
    camera_on: "Start video",
    camera_label_on: "Turn your camera off",
    camera_label_off: "Turn your camera on",
    share_screen: "Share screen",
    stop_share: "Stop sharing",
    raise_hand: "Raise hand",
    lower_hand: "Lower hand",
    ask_help: "Ask for help",
    leave: "Leave",
    settings: "Devices",

    // Room: side panel
    panel_label: "Side panel",
    tab_people: "People",
    tab_chat: "Chat",
    tab_moderate: "Moderate",
    people_heading: "People in this room",
    you: "you",
    role_organiser: "Organiser",
    role_moderator: "Moderator",
    role_participant: "Participant",
    role_observer: "Observer",
    state_muted: "Muted",
    state_hand: "Hand raised",
    state_screen: "Sharing screen",
    chat_heading: "Chat",
    chat_placeholder: "Write a message",
    chat_input_label: "Chat message",
    chat_send: "Send",
    chat_log_label: "Chat messages",
    choose_heading: "Choose a breakout room",
    choose_hint: "This breakout lets you pick your room.",
    choose_join: "Go to {room}",
    choose_current: "You are here",
    choose_back: "Back to the plenary",
    video_grid_label: "Video of the people in this room",
    tile_you: "{name} (you)",
    tile_connecting: "Connecting…",
    tile_no_video: "Camera off",
    tile_listening: "Listening",
    tile_you_listening: "You are listening. A moderator can give you the floor.",
    tile_sfu_down: "Waiting for the media server…",
    tile_screen_of: "Screen of {name}",
    tile_label: "Video of {name}",

    // End screen
    end_heading: "You left the workshop",
    end_heading_disconnected: "You are not connected",
    end_left: "You left the room. You can close this tab.",
    end_removed: "A moderator removed you from this workshop.",
    end_unauthenticated: "This invitation link is not valid any more. Ask the organiser for a new one.",
    end_replaced: "You joined from another tab or device, so this one was disconnected.",
    end_room_full: "The room is full. Try again in a moment.",
    end_protocol: "The connection failed because of an error in this page. Reload to try again.",
    end_no_token: "This page needs an invitation link. Open the link you received from the organiser.",
    end_invalid_link: "This invitation link could not be checked: {error}",
    rejoin: "Join again",

    // Moderator console
    mod_heading: "Moderator console",
    mod_rooms: "Rooms and who is in them",
    mod_refresh: "Refresh",
    mod_room_here: "you are here",
    mod_visit: "Visit",
    mod_nobody: "Nobody assigned",
    mod_breakouts: "Breakout rooms",
    mod_plan_name: "Name",
    mod_plan_name_default: "Breakouts",
    mod_room_count: "Number of rooms",
    mod_strategy: "Assignment",
    strategy_manual: "Assign by hand",
    strategy_random: "Random",
    strategy_balanced: "Balanced",
    strategy_country_mixed: "Mix countries",
    strategy_self_select: "Participants choose",
    mod_create: "Create breakout rooms",
    mod_plan_state: "{name}: {state}",
    plan_state_draft: "prepared, not open yet",
    plan_state_open: "open",
    plan_state_closing: "closing",
    plan_state_closed: "closed",
    mod_assign_heading: "Assignments",
    mod_assign_for: "Room for {name}",
    mod_unassigned: "Not assigned",
    mod_plenary: "Plenary",
    mod_save_assignments: "Save assignments",
    mod_assignments_saved: "Assignments saved.",
    mod_move: "Move",
    mod_moves_heading: "Move people between rooms",
    mod_moved: "{name} moved.",
    mod_duration: "Duration (minutes)",
    mod_open: "Open breakout rooms",
    mod_extend_by: "Extend by (minutes)",
    mod_extend: "Extend",
    mod_countdown: "Countdown (seconds)",
    mod_close: "Close breakout rooms",
    mod_broadcast_label: "Message to every room",
    mod_broadcast: "Broadcast",
    mod_broadcast_sent: "Message sent to every room.",
    mod_new_plan: "Prepare new breakout rooms",
    mod_help_queue: "Help requests",
    mod_help_empty: "No one is asking for help.",
    mod_help_item: "{name} in {room}",
    mod_help_go: "Go to room",
    mod_mute: "Mute",
    mod_mute_label: "Mute {name}",
    mod_remove: "Remove",
    mod_remove_label: "Remove {name} from the workshop",
    mod_remove_confirm: "Confirm removal",
    mod_floor_grant: "Give the floor",
    mod_floor_grant_label: "Give the floor to {name}",
    mod_floor_revoke: "Take the floor back",
    mod_floor_revoke_label: "Take the floor back from {name}",
    mod_floor_granted: "{name} has the floor.",
    mod_floor_revoked: "{name} is listening again.",
    mod_lower_hand: "Lower hand",
    mod_lower_hand_label: "Lower the hand of {name}",
    mod_done: "Done.",
    mod_recording: "Recording",
    mod_record_start: "Start recording this room",
    mod_record_stop: "Stop recording",
    mod_record_stop_label: "Stop recording {room}",
    mod_recording_here: "This room is being recorded.",
    mod_recording_in: "Recording in {room}",
    mod_recording_none: "Nothing is being recorded.",
    mod_recording_started: "Recording started.",
    mod_recording_stopped: "Recording stopped; the files are ready.",
    mod_error: "{message}",
    mod_loading: "Loading…",
    mod_not_allowed: "Only moderators and organisers can use the console.",

    // Organiser page
    admin_title: "Roundtable: organiser",
    admin_sign_in: "Sign in",
    admin_token_label: "Admin token",
    admin_token_hint: "The admin token is printed when the server starts for the first time.",
    admin_sign_out: "Sign out",
    admin_bad_token: "That admin token was not accepted.",
    admin_workshops: "Workshops",
    admin_no_workshops: "No workshops yet.",
    admin_new_workshop: "New workshop",
    admin_title_label: "Title",
    admin_description: "Description",
    admin_timezone: "Time zone",
    admin_starts: "Starts",
    admin_ends: "Ends",
    admin_consent: "Recording consent",
    consent_explicit: "Ask each participant",
    consent_assumed: "Assumed unless they object",
    admin_create: "Create workshop",
    admin_created: "Workshop created.",
    admin_open: "Open",
    admin_participants: "Participants",
    admin_no_participants: "No participants yet.",
    admin_import: "Import a roster (CSV)",
    admin_import_hint: "Header row: display_name,country,organisation,email,role",
    admin_csv_file: "CSV file",
    admin_csv_text: "Or paste the CSV here",
    admin_import_button: "Import",
    admin_imported: "{n} participants imported.",
    admin_import_failed: "Nothing was imported: {message}",
    admin_add_participant: "Add a participant",
    admin_name: "Name",
    admin_country: "Country (ISO code)",
    admin_country_short: "Country",
    admin_organisation: "Organisation",
    admin_email: "E-mail",
    admin_role: "Role",
    admin_add: "Add",
    admin_added: "{name} added.",
    admin_invite: "Invite link",
    admin_copy: "Copy link",
    admin_copy_label: "Copy the invite link of {name}",
    admin_copied: "Invite link of {name} copied.",
    admin_copy_failed: "Copy failed; the link is selected, copy it by hand.",
    admin_rooms: "Rooms",
    admin_room_kind_plenary: "plenary",
    admin_room_kind_breakout: "breakout",
    admin_capacity: "{n} places",
    admin_back: "All workshops",
    admin_line_error: "line {line}: {field}: {message}",

    // Landing page
    index_text: "Participants open the invitation link they received. Organisers sign in here:",
    index_admin_link: "Organiser page",
  },
};

let language = "en";

export function setLanguage(lang) {
  if (STRINGS[lang]) language = lang;
}

export function currentLanguage() {
  return language;
}

export function t(key, params = {}) {
  const table = STRINGS[language] || STRINGS.en;
  let text = table[key] ?? STRINGS.en[key];
  if (text === undefined) {
    console.warn("missing string", key);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** Fill the static markup's strings: data-i18n, data-i18n-label, data-i18n-placeholder, data-i18n-title. */
export function applyStrings(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  document.documentElement.lang = language;
}

/** "2:05", "1:02:05": a countdown for people. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

export function formatTime(iso) {
  try {
    return new Date(iso).toLocaleTimeString(language, { hour: "2-digit", minute: "2-digit" });
  } catch {
    return "";
  }
}

/** The country's name in the page language ("PT" -> "Portugal"), from the browser's own data. */
export function countryName(code) {
  try {
    return new Intl.DisplayNames([language], { type: "region" }).of(code) || code;
  } catch {
    return code;
  }
}

export function roleName(role) {
  return t(`role_${role}`);
}

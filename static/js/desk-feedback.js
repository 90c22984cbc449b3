// Desk: a distinct short sound for the outcome of the last scan, and focus back on the code field.
//
// The server renders the outcome as text (the sound only repeats it, for volunteers looking at the
// item rather than the screen):
//   <div class="outcome outcome-success" role="status" data-outcome="success">Added: Drill</div>
// Outcomes: success, returned, blocked, unavailable, unknown, already.
//
// Optional mute button, rendered by the server and revealed here (it does nothing without JS):
//   <button type="button" data-sound-toggle aria-pressed="true" hidden>Sounds</button>
// aria-pressed="true" means sounds are ON. The choice is kept in localStorage
// ("lending.desk.sound" = "off" mutes) and aria-pressed is set from it on every page.
//
// Focus moves to [data-autofocus] so a USB barcode scanner (a keyboard) can scan the next item.
// No words live in this file, no eval, no inline handlers (strict CSP is fine).
(function () {
  "use strict";

  var STORAGE_KEY = "lending.desk.sound";
  var VOLUME = 0.15;
  var RESUME_WAIT_MS = 300; // if audio is not allowed by then, stay silent (never play late)

  // Each note: frequency in Hz (to: glide to this), duration and the gap before it in ms.
  var PATTERNS = {
    success: [{freq: 660, ms: 90, type: "sine"}, {freq: 880, ms: 90, gap: 40, type: "sine"}],
    returned: [{freq: 520, to: 1040, ms: 180, type: "sine"}],
    blocked: [{freq: 220, ms: 400, type: "square"}],
    unavailable: [{freq: 294, ms: 160, type: "triangle"}, {freq: 294, ms: 160, gap: 90, type: "triangle"}],
    unknown: [{freq: 247, ms: 70, type: "triangle"}, {freq: 247, ms: 70, gap: 60, type: "triangle"},
              {freq: 247, ms: 70, gap: 60, type: "triangle"}],
    already: [{freq: 523, ms: 140, type: "sine"}]
  };

  var audioContext = null;

  function soundOn() {
    try { return window.localStorage.getItem(STORAGE_KEY) !== "off"; } catch (error) { return true; }
  }

  function setSoundOn(on) {
    try {
      if (on) { window.localStorage.removeItem(STORAGE_KEY); } else { window.localStorage.setItem(STORAGE_KEY, "off"); }
    } catch (error) { /* storage refused: the setting lasts for this page only */ }
  }

  function autoplayRefused() {
    // Firefox can say so up front, which saves a console warning; others just try.
    try {
      return typeof navigator.getAutoplayPolicy === "function" &&
             navigator.getAutoplayPolicy("audiocontext") === "disallowed";
    } catch (error) {
      return false;
    }
  }

  // Resolves to a running AudioContext, or null when there is none or it may not play now.
  function readyContext() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) { return Promise.resolve(null); }
    if (!audioContext) {
      if (autoplayRefused()) { return Promise.resolve(null); }
      try { audioContext = new Context(); } catch (error) { return Promise.resolve(null); }
    }
    var context = audioContext;
    if (context.state === "running") { return Promise.resolve(context); }
    var resumed;
    try {
      resumed = Promise.resolve(context.resume()).then(function () { return context.state === "running" ? context : null; },
                                                       function () { return null; });
    } catch (error) {
      return Promise.resolve(null);
    }
    var timeout = new Promise(function (resolve) { window.setTimeout(function () { resolve(null); }, RESUME_WAIT_MS); });
    return Promise.race([resumed, timeout]);
  }

  function schedule(context, notes) {
    var at = context.currentTime + 0.02;
    notes.forEach(function (note) {
      at += (note.gap || 0) / 1000;
      var seconds = note.ms / 1000;
      var oscillator = context.createOscillator();
      var gain = context.createGain();
      oscillator.type = note.type || "sine";
      oscillator.frequency.setValueAtTime(note.freq, at);
      if (note.to) { oscillator.frequency.exponentialRampToValueAtTime(note.to, at + seconds); }
      // Short attack and release so the tones do not click.
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(VOLUME, at + 0.008);
      gain.gain.setValueAtTime(VOLUME, at + Math.max(0.008, seconds - 0.02));
      gain.gain.exponentialRampToValueAtTime(0.0001, at + seconds);
      oscillator.connect(gain);
      gain.connect(context.destination);
      oscillator.start(at);
      oscillator.stop(at + seconds + 0.01);
      at += seconds;
    });
  }

  function play(outcome) {
    var notes = PATTERNS[outcome];
    if (!notes || !soundOn()) { return Promise.resolve(false); }
    return readyContext().then(function (context) {
      if (!context) { return false; }
      try { schedule(context, notes); return true; } catch (error) { return false; }
    }, function () { return false; });
  }

  function setUpToggle(button) {
    button.setAttribute("aria-pressed", soundOn() ? "true" : "false");
    button.hidden = false;
    button.addEventListener("click", function () {
      var on = !soundOn();
      setSoundOn(on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
      if (on) { play("already"); } // a gesture: confirms sounds are on, and unlocks audio
    });
  }

  function init() {
    var toggle = document.querySelector("[data-sound-toggle]");
    if (toggle) { setUpToggle(toggle); }
    var focusTarget = document.querySelector("[data-autofocus]");
    if (focusTarget && typeof focusTarget.focus === "function") {
      focusTarget.focus();
    }
    var outcome = document.querySelector("[data-outcome]");
    if (outcome) {
      // data-outcome-played="yes|no" records whether the sound could play (browser tests read it).
      play(outcome.getAttribute("data-outcome")).then(function (played) {
        outcome.setAttribute("data-outcome-played", played ? "yes" : "no");
      });
    }
  }

  // For tests and other desk scripts: window.lendingDeskFeedback.play("success").
  window.lendingDeskFeedback = {play: play, patterns: PATTERNS};

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

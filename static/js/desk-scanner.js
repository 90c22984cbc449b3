// Desk: scan an item's QR label with the device's camera, in the page.
//
// Enhances every element with `data-scanner`. The markup provides all the words (so they are
// translated with the page); this file holds none. Needs the vendored jsQR decoder loaded first
// (/static/vendor/jsqr-1.4.0/jsQR.js, with `defer` before this file). No eval, no inline handlers,
// so it works under a strict Content-Security-Policy.
//
//   <div class="scanner" data-scanner data-scanner-input="ID OF THE CODE INPUT"
//        data-msg-starting="…" data-msg-scanning="…" data-msg-no-camera="…" data-msg-denied="…">
//     <button type="button" data-scanner-start hidden>…</button>   (revealed here if usable)
//     <button type="button" data-scanner-stop hidden>…</button>
//     <video data-scanner-video hidden playsinline muted aria-hidden="true"></video>
//     <p data-scanner-status role="status" aria-live="polite"></p>
//   </div>
//
// A decoded label URL ending /i/CODE or /c/CODE gives CODE; any other text is taken as the code.
// The code goes into the input and its form is submitted, exactly as if it had been typed.
(function () {
  "use strict";

  var MAX_SIDE = 640;          // downscale frames so the longest side is at most this
  var SCAN_INTERVAL_MS = 120;  // about eight decodes a second
  var REPEAT_WINDOW_MS = 2000; // the same code again within this is ignored

  function canUseCamera() {
    return !!(navigator.mediaDevices && typeof navigator.mediaDevices.getUserMedia === "function" &&
              typeof window.jsQR === "function");
  }

  // The code in a scanned text: /i/<code> or /c/<code> in a URL, else the trimmed text.
  function codeFrom(text) {
    var trimmed = String(text || "").trim();
    if (!trimmed) { return ""; }
    if (/^https?:\/\//i.test(trimmed)) {
      var path = null;
      try { path = new URL(trimmed).pathname; } catch (error) { path = null; }
      var match = path ? /^\/[ic]\/([^\/]+)\/?$/.exec(path) : null;
      if (match) {
        try { return decodeURIComponent(match[1]).trim(); } catch (error) { return match[1].trim(); }
      }
    }
    return trimmed;
  }

  function Scanner(root) {
    this.root = root;
    this.startButton = root.querySelector("[data-scanner-start]");
    this.stopButton = root.querySelector("[data-scanner-stop]");
    this.video = root.querySelector("[data-scanner-video]");
    this.status = root.querySelector("[data-scanner-status]");
    this.canvas = document.createElement("canvas");
    this.context = null;
    this.stream = null;
    this.running = false;
    this.generation = 0;   // bumped by every start and stop, so a late getUserMedia answer is dropped
    this.frameRequest = 0;
    this.lastScanAt = 0;
    this.lastCode = "";
    this.lastCodeAt = 0;
  }

  Scanner.prototype.message = function (name) {
    return this.root.getAttribute("data-msg-" + name) || "";
  };

  Scanner.prototype.say = function (text) {
    if (this.status) { this.status.textContent = text; }
  };

  Scanner.prototype.showRunning = function (running) {
    var hadFocus = document.activeElement;
    if (this.startButton) { this.startButton.hidden = running; }
    if (this.stopButton) { this.stopButton.hidden = !running; }
    if (this.video) { this.video.hidden = !running; }
    // Keep keyboard focus on the visible button rather than losing it to the page.
    if (running && hadFocus === this.startButton && this.stopButton) { this.stopButton.focus(); }
    if (!running && hadFocus === this.stopButton && this.startButton) { this.startButton.focus(); }
  };

  Scanner.prototype.start = async function () {
    if (this.running) { return; }
    this.running = true;
    var generation = ++this.generation;
    this.showRunning(true);
    this.say(this.message("starting"));
    var stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({audio: false, video: {facingMode: "environment"}});
    } catch (error) {
      if (generation !== this.generation) { return; }
      this.stop();
      var denied = error && (error.name === "NotAllowedError" || error.name === "SecurityError" ||
                             error.name === "PermissionDeniedError");
      this.say(this.message(denied ? "denied" : "no-camera"));
      return;
    }
    if (generation !== this.generation) { // stopped (or page hidden) while we waited
      stopTracks(stream);
      return;
    }
    this.stream = stream;
    var video = this.video;
    video.muted = true;
    video.setAttribute("playsinline", "");
    video.srcObject = stream;
    try {
      await video.play();
    } catch (error) {
      // Autoplay refusal of a muted stream is unusual; frames still arrive on most browsers.
    }
    if (generation !== this.generation) { return; }
    this.say(this.message("scanning"));
    this.lastScanAt = 0;
    this.scheduleScan(generation);
  };

  Scanner.prototype.scheduleScan = function (generation) {
    var self = this;
    this.frameRequest = window.requestAnimationFrame(function (now) { self.scan(generation, now); });
  };

  Scanner.prototype.scan = function (generation, now) {
    if (generation !== this.generation || !this.running) { return; }
    if (now - this.lastScanAt >= SCAN_INTERVAL_MS) {
      this.lastScanAt = now;
      var code = this.decodeFrame();
      if (code && !(code === this.lastCode && Date.now() - this.lastCodeAt < REPEAT_WINDOW_MS)) {
        this.lastCode = code;
        this.lastCodeAt = Date.now();
        this.found(code);
        return;
      }
    }
    this.scheduleScan(generation);
  };

  Scanner.prototype.decodeFrame = function () {
    var video = this.video;
    var width = video.videoWidth;
    var height = video.videoHeight;
    if (video.readyState < 2 || !width || !height) { return ""; } // HAVE_CURRENT_DATA
    var scale = Math.min(1, MAX_SIDE / Math.max(width, height));
    var w = Math.max(1, Math.round(width * scale));
    var h = Math.max(1, Math.round(height * scale));
    if (this.canvas.width !== w || this.canvas.height !== h || !this.context) {
      this.canvas.width = w;
      this.canvas.height = h;
      this.context = this.canvas.getContext("2d", {willReadFrequently: true});
    }
    if (!this.context) { return ""; }
    try {
      this.context.drawImage(video, 0, 0, w, h);
      var image = this.context.getImageData(0, 0, w, h);
      var result = window.jsQR(image.data, w, h, {inversionAttempts: "dontInvert"});
      return result && result.data ? codeFrom(result.data) : "";
    } catch (error) {
      return "";
    }
  };

  Scanner.prototype.found = function (code) {
    this.stop();
    this.say("");
    var id = this.root.getAttribute("data-scanner-input");
    var input = id ? document.getElementById(id) : null;
    if (!input) { return; }
    input.value = code;
    input.dispatchEvent(new Event("input", {bubbles: true}));
    input.dispatchEvent(new Event("change", {bubbles: true}));
    var form = input.form;
    if (!form) { return; }
    if (typeof form.requestSubmit === "function") {
      form.requestSubmit();
    } else {
      form.submit();
    }
  };

  Scanner.prototype.stop = function () {
    this.generation += 1;
    this.running = false;
    if (this.frameRequest) {
      window.cancelAnimationFrame(this.frameRequest);
      this.frameRequest = 0;
    }
    if (this.stream) {
      stopTracks(this.stream);
      this.stream = null;
    }
    if (this.video) {
      try { this.video.pause(); } catch (error) { /* nothing to pause */ }
      this.video.srcObject = null;
    }
    this.showRunning(false);
    this.say("");
  };

  function stopTracks(stream) {
    stream.getTracks().forEach(function (track) { track.stop(); });
  }

  function enhance(root) {
    if (root.scanner) { return root.scanner; }
    var scanner = new Scanner(root);
    root.scanner = scanner;
    if (!scanner.startButton || !scanner.video || !canUseCamera()) {
      if (scanner.startButton) { scanner.startButton.hidden = true; }
      return scanner;
    }
    scanner.startButton.hidden = false;
    scanner.startButton.addEventListener("click", function () { scanner.start(); });
    if (scanner.stopButton) {
      scanner.stopButton.addEventListener("click", function () { scanner.stop(); });
    }
    return scanner;
  }

  function init() {
    var roots = document.querySelectorAll("[data-scanner]");
    var scanners = [];
    for (var i = 0; i < roots.length; i += 1) { scanners.push(enhance(roots[i])); }
    window.addEventListener("pagehide", function () {
      scanners.forEach(function (scanner) { if (scanner.running || scanner.stream) { scanner.stop(); } });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

// Times are sent in UTC (ISO 8601); show them in the browser's local time. The search form
// tells the server how far the browser's clock is from UTC, so its dates mean local time too.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) { el.textContent = when.toLocaleString(); }
  });
  document.querySelectorAll("input[data-tz]").forEach(function (el) {
    el.value = String(new Date().getTimezoneOffset());
  });
  // A form that changes something for good asks first (the server needs its "action" field
  // either way, so without this script nothing is lost but the question).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  live();
  // Bookmarks: a new one is at the player's time; clicking one's time seeks the player there.
  var audio = document.querySelector("audio");
  if (!audio) { return; }
  document.querySelectorAll("input[data-player-time]").forEach(function (el) {
    audio.addEventListener("timeupdate", function () {
      var s = Math.floor(audio.currentTime);
      el.value = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    });
  });
  document.querySelectorAll("a[data-offset]").forEach(function (el) {
    el.addEventListener("click", function (event) {
      if (el.getAttribute("href") === "#") { event.preventDefault(); }
      audio.currentTime = parseFloat(el.getAttribute("data-offset"));
      audio.play();
    });
  });
  timeline(audio);
  waveform();
  sides(audio);
});

// The waveform: peak levels the server measured, one bar per bucket, each channel in its own
// band (left above right for a stereo recording).
function waveform() {
  var canvas = document.querySelector("canvas[data-peaks]");
  if (!canvas || !window.fetch) { return; }
  fetch(canvas.getAttribute("data-peaks"))
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (found) {
      if (!found) { return; }
      var context = canvas.getContext("2d");
      var band = canvas.height / found.peaks.length;
      context.fillStyle = "#4a5a8a";
      found.peaks.forEach(function (levels, c) {
        var step = canvas.width / levels.length;
        var middle = band * c + band / 2;
        levels.forEach(function (level, i) {
          var half = Math.max(0.5, level * band / 2);
          context.fillRect(i * step, middle - half, Math.max(1, step), 2 * half);
        });
      });
      canvas.setAttribute("data-drawn", String(found.peaks.length));
    });
}

// A stereo recording: play both sides or one alone (a rendition of that side), at the same
// place and as playing or paused as it was.
function sides(audio) {
  var choice = document.querySelector("fieldset[data-sides]");
  if (!choice) { return; }
  var base = choice.getAttribute("data-sides");
  choice.addEventListener("change", function (event) {
    var at = audio.currentTime;
    var playing = !audio.paused;
    var side = event.target.value;
    audio.src = base + (side ? "?side=" + encodeURIComponent(side) : "");
    audio.addEventListener("loadedmetadata", function () {
      audio.currentTime = at;
      if (playing) { audio.play(); }
    }, {once: true});
    audio.load();
  });
}

// The player's timeline (blackouts marked by the server): the playhead follows the player,
// and a click plays from that place. Its units are milliseconds of the recording.
function timeline(audio) {
  var svg = document.querySelector("svg[data-timeline]");
  if (!svg) { return; }
  var width = parseFloat(svg.getAttribute("data-timeline"));
  var head = svg.querySelector("[data-playhead]");
  audio.addEventListener("timeupdate", function () {
    head.setAttribute("x", String(Math.min(width, audio.currentTime * 1000)));
  });
  svg.addEventListener("click", function (event) {
    var box = svg.getBoundingClientRect();
    audio.currentTime = (event.clientX - box.left) / box.width * width / 1000;
    audio.play();
  });
}

// The live view: the server sends its state twice a second; text goes in as text only.
function clock(seconds) {
  var s = Math.round(seconds);
  return Math.floor(s / 3600) + ":" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") +
    ":" + String(s % 60).padStart(2, "0");
}

// Listening live: the call's audio comes as a WAV stream of unknown length; each piece is
// played through Web Audio as it arrives (an <audio> element would buffer many seconds of it
// first). Pieces are scheduled back to back a little ahead of the clock; one arriving late
// starts afresh at the clock, so the delay never grows.
var LISTEN_AHEAD = 0.15;  // seconds a piece is scheduled ahead of the audio clock
// Audio queued beyond this is dropped rather than played late: an audio clock that starts
// late (a busy machine, a slow audio device) must not leave the listener behind the line.
var LISTEN_MAX_QUEUED = 1.0;

function listen() {
  var calls = document.getElementById("live-calls");
  var status = document.getElementById("live-listening");
  var stop = document.getElementById("live-stop");
  if (!calls || !status || !stop || !window.AudioContext || !window.fetch) { return; }
  var current = null;
  function halt(text) {
    if (current) {
      current.controller.abort();
      current.context.close();
      current = null;
    }
    stop.hidden = true;
    if (text) { status.textContent = text; }
  }
  stop.addEventListener("click", function () { halt("Stopped."); });
  calls.addEventListener("click", function (event) {
    var ident = event.target.getAttribute && event.target.getAttribute("data-listen");
    if (!ident) { return; }
    halt("");
    var mine = {controller: new AbortController(), context: new AudioContext(), at: 0,
                heard: 0, skipped: 0};
    current = mine;
    status.audioContext = mine.context;  // for the tests: its clock, and whether it runs
    status.setAttribute("data-heard", "0");
    status.setAttribute("data-queued", "0");
    status.setAttribute("data-skipped", "0");
    status.textContent = "Listening to recording " + Number(ident) + "\u2026";
    stop.hidden = false;
    fetch("/recordings/" + Number(ident) + "/live", {signal: mine.controller.signal})
      .then(function (response) {
        if (!response.ok) { throw new Error("the portal answered " + response.status); }
        return play(mine, response.body.getReader(), Number(ident));
      })
      .then(function () { if (current === mine) { halt("The call has ended."); } })
      .catch(function (error) {
        if (current === mine) { halt("Listening stopped: " + error.message); }
      });
  });

  function play(mine, reader, ident) {
    var format = null;
    var pending = new Uint8Array(0);
    function more() {
      return reader.read().then(function (got) {
        if (got.done || current !== mine) { return; }
        var joined = new Uint8Array(pending.length + got.value.length);
        joined.set(pending);
        joined.set(got.value, pending.length);
        pending = joined;
        if (!format) {
          if (pending.length < 44) { return more(); }
          var head = new DataView(pending.buffer, 0, 44);
          format = {channels: head.getUint16(22, true), rate: head.getUint32(24, true)};
          pending = pending.slice(44);
        }
        var frames = Math.floor(pending.length / (2 * format.channels));
        if (frames) {
          schedule(mine, format, new DataView(pending.buffer, 0, frames * 2 * format.channels),
                   frames);
          pending = pending.slice(frames * 2 * format.channels);
          status.setAttribute("data-heard", mine.heard.toFixed(2));
          status.textContent = "Listening to recording " + ident + ": " + clock(mine.heard);
        }
        return more();
      });
    }
    return more();
  }

  function schedule(mine, format, view, frames) {
    var buffer = mine.context.createBuffer(format.channels, frames, format.rate);
    for (var c = 0; c < format.channels; c++) {
      var data = buffer.getChannelData(c);
      for (var i = 0; i < frames; i++) {
        data[i] = view.getInt16((i * format.channels + c) * 2, true) / 32768;
      }
    }
    var source = mine.context.createBufferSource();
    source.buffer = buffer;
    source.connect(mine.context.destination);
    var now = mine.context.currentTime;
    mine.heard += buffer.duration;
    if (mine.at < now) { mine.at = now + LISTEN_AHEAD; }
    if (mine.at + buffer.duration - now > LISTEN_MAX_QUEUED) {
      mine.skipped += buffer.duration;
      status.setAttribute("data-skipped", mine.skipped.toFixed(2));
      return;
    }
    source.start(mine.at);
    mine.at += buffer.duration;
    status.setAttribute("data-queued", (mine.at - now).toFixed(2));
  }
}

function live() {
  var table = document.getElementById("live-channels");
  listen();
  if (!table || !window.EventSource) { return; }
  var source = new EventSource(table.getAttribute("data-stream"));
  source.onmessage = function (event) {
    var view = JSON.parse(event.data);
    view.channels.forEach(function (c) {
      var row = table.querySelector('tr[data-channel="' + Number(c.id) + '"]');
      if (!row) { return; }
      row.querySelector('[data-field="state"]').textContent = c.state;
      row.querySelector('[data-field="recording"]').textContent = c.recording ? "yes" : "no";
      row.querySelector('[data-field="level"]').value = c.level;
      row.querySelector('[data-field="db"]').textContent = Math.round(c.level);
    });
    var calls = document.getElementById("live-calls");
    calls.replaceChildren();
    view.calls.forEach(function (a) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = "/recordings/" + Number(a.recordid);
      link.textContent = "Recording " + a.recordid;
      item.append(link, " on " + a.device + ", " + clock(a.seconds) + (a.paused ? " (paused)" : ""));
      if (calls.getAttribute("data-listen")) {
        var button = document.createElement("button");
        button.type = "button";
        button.textContent = "Listen";
        button.setAttribute("data-listen", String(Number(a.recordid)));
        item.append(" ", button);
      }
      calls.append(item);
    });
    if (!view.calls.length) {
      var none = document.createElement("li");
      none.className = "note";
      none.textContent = "None.";
      calls.append(none);
    }
  };
}

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
    el.addEventListener("click", function () {
      audio.currentTime = parseFloat(el.getAttribute("data-offset"));
      audio.play();
    });
  });
});

// The live view: the server sends its state twice a second; text goes in as text only.
function clock(seconds) {
  var s = Math.round(seconds);
  return Math.floor(s / 3600) + ":" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") +
    ":" + String(s % 60).padStart(2, "0");
}

function live() {
  var table = document.getElementById("live-channels");
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

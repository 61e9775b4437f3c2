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

/* Gradient Lab kernel-free figure: swaps frames precomputed at build time. No network, no libraries. */
(function (root) {
  if (!root || root.dataset.glReady) { return; }
  root.dataset.glReady = "1";
  var data = JSON.parse(root.querySelector("script.gl-data").textContent);
  var img = root.querySelector("img.gl-frame");
  var status = root.querySelector(".gl-status");
  var controls = Array.prototype.slice.call(root.querySelectorAll("[data-gl-axis]"));
  controls.sort(function (a, b) { return +a.dataset.glAxis - +b.dataset.glAxis; });
  function update() {
    var index = 0;
    controls.forEach(function (el) {
      var axis = +el.dataset.glAxis, i = +el.value;
      index = index * data.shape[axis] + i;
      var label = data.labels[axis][i];
      var shown = root.querySelector('output[data-gl-for="' + axis + '"]');
      if (shown) { shown.textContent = label; }
      if (el.tagName === "INPUT") { el.setAttribute("aria-valuetext", label); }
    });
    img.src = "data:image/webp;base64," + data.frames[data.index[index]];
    img.alt = data.alts[index];
    status.textContent = data.messages[index];
    status.classList.toggle("gl-alert", !!data.alerts[index]);  // warning colour only for a diverged or failed run
    root.dataset.glFrame = String(index);
  }
  controls.forEach(function (el) {
    el.addEventListener("input", update);
    el.addEventListener("change", update);
  });
  update();
})(document.currentScript && document.currentScript.parentElement);

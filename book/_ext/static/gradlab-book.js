// Gradient Lab: served on every page by book/_ext/gradlab_book.py.
// A display formula wider than the column scrolls sideways (gradlab-book.css). Such a formula
// gets a tab stop, so that a keyboard reader can reach it and scroll it with the arrow keys;
// one that fits gets none. Checked when the page loads, when fonts arrive and on resize.
(() => {
  const update = () => {
    document.querySelectorAll("div.math > .katex-display").forEach((el) => {
      if (el.scrollWidth > el.clientWidth + 1) {
        el.tabIndex = 0;
      } else {
        el.removeAttribute("tabindex");
      }
    });
  };
  let timer = 0;
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(update, 150);
  };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", update);
  } else {
    update();
  }
  window.addEventListener("load", update);
  window.addEventListener("resize", later);
  if (document.fonts) document.fonts.ready.then(update);
})();

// Progressive enhancement only: a "Copy" button under each command (the pages work without script).
document.addEventListener("DOMContentLoaded", function () {
  if (!navigator.clipboard) { return; }
  document.querySelectorAll(".call pre").forEach(function (pre) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy secondary";
    button.textContent = "Copy";
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(pre.textContent).then(function () { button.textContent = "Copied"; });
    });
    pre.insertAdjacentElement("afterend", button);
  });
});

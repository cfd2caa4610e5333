// The start form: show only the chosen tool's options (without this script all show, and
// the server reads only the chosen tool's).
const tool = document.getElementById("tool");

function show() {
  for (const set of document.querySelectorAll("fieldset.options")) {
    const mine = set.dataset.tool === tool.value;
    set.hidden = !mine;
    set.disabled = !mine;
  }
}

if (tool) {
  tool.addEventListener("change", show);
  show();
}

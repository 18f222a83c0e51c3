// The builder's node config form (templates/workflows/builder/_node_form.html):
// clicking a reference inserts it at the cursor of the field last edited, and
// "Preview the field" shows what that field's template (or expression) resolves to against
// the last run.
// Loaded with each form partial, so it installs its document-level listeners only once.
(function () {
  "use strict";
  if (window.flowmatrxNodeForm) return;

  var lastField = null;

  function isTextField(el) {
    if (!el || !el.closest || !el.closest(".node-config form")) return false;
    if (el.tagName === "TEXTAREA") return true;
    return el.tagName === "INPUT" && (el.type === "text" || el.type === "search");
  }

  function insertAtCursor(field, text) {
    var start = field.selectionStart, end = field.selectionEnd;
    if (typeof start !== "number") { start = end = field.value.length; }
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    var caret = start + text.length;
    field.focus();
    field.setSelectionRange(caret, caret);
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  document.addEventListener("focusin", function (event) {
    if (isTextField(event.target)) lastField = event.target;
  });

  // mousedown, not click: keep the focus (and the cursor) in the field being edited
  document.addEventListener("mousedown", function (event) {
    if (event.target.closest && event.target.closest("[data-fm-ref], [data-fm-preview]")) {
      event.preventDefault();
    }
  });

  document.addEventListener("click", function (event) {
    var ref = event.target.closest && event.target.closest("[data-fm-ref]");
    if (ref) {
      var panel = ref.closest(".node-config");
      var field = lastField && panel && panel.contains(lastField) ? lastField : null;
      if (!field && panel) {
        field = panel.querySelector("form textarea:not([disabled]), form input[type=text]:not([disabled])");
      }
      if (field && !field.disabled) {
        // an expression (a condition) names values bare: fetch.status_code == 200
        var text = field.hasAttribute("data-fm-expression")
          ? ref.getAttribute("data-fm-path")
          : ref.getAttribute("data-fm-ref");
        insertAtCursor(field, text);
      }
      return;
    }
    var button = event.target.closest && event.target.closest("[data-fm-preview]");
    if (button) {
      var root = button.closest(".node-config");
      var output = root.querySelector(".preview-output");
      var source = lastField && root.contains(lastField) ? lastField : null;
      if (!source) {
        output.textContent = "Click into a field first, then preview it.";
        return;
      }
      window.htmx.ajax("POST", button.getAttribute("data-fm-preview"), {
        source: button,
        target: output,
        swap: "innerHTML",
        values: {
          template: source.value,
          node_id: button.getAttribute("data-node-id"),
          kind: source.hasAttribute("data-fm-expression") ? "expression" : "template",
        },
      });
    }
  });

  window.flowmatrxNodeForm = { insertAtCursor: insertAtCursor };
})();

// The image picker of the prompt forms (app/templates/_battle_parts.html, image_picker):
// a file input, drag-and-drop onto the form and paste from the clipboard all put the image in
// the form's file input, which htmx sends as multipart/form-data. A thumbnail shows before
// sending, with a remove button. The type and size checks here are hints; the server decides.
// Listeners sit on the document, so forms that htmx swaps in later work the same.
(function () {
  "use strict";

  function pickerOf(node) {
    var form = node && node.closest ? node.closest("form") : null;
    return form ? form.querySelector(".image-picker") : null;
  }

  function note(picker, text) {
    var p = picker.querySelector(".image-note");
    p.textContent = text;
    p.hidden = !text;
  }

  function clear(picker) {
    var input = picker.querySelector("input[type=file]");
    var thumb = picker.querySelector(".image-thumb");
    input.value = "";
    if (thumb.dataset.url) {
      URL.revokeObjectURL(thumb.dataset.url);
      delete thumb.dataset.url;
    }
    thumb.removeAttribute("src");
    picker.querySelector(".image-name").textContent = "";
    picker.querySelector(".image-preview").hidden = true;
  }

  function problem(picker, file) {
    var accept = (picker.dataset.accept || "").split(",");
    var max = Number(picker.dataset.maxBytes || 0);
    if (accept.indexOf(file.type) < 0) {
      return "Only PNG, JPEG or WebP images can be sent.";
    }
    if (max && file.size > max) {
      return "The image is larger than " + Math.round(max / 1048576) + " MB.";
    }
    return "";
  }

  function show(picker) {
    var input = picker.querySelector("input[type=file]");
    var file = input.files && input.files[0];
    var thumb = picker.querySelector(".image-thumb");
    if (!file) {
      clear(picker);
      return;
    }
    var why = problem(picker, file);
    if (why) {
      clear(picker);
      note(picker, why);
      return;
    }
    note(picker, "");
    if (thumb.dataset.url) {
      URL.revokeObjectURL(thumb.dataset.url);
    }
    thumb.dataset.url = URL.createObjectURL(file);
    thumb.src = thumb.dataset.url;
    picker.querySelector(".image-name").textContent = file.name;
    picker.querySelector(".image-preview").hidden = false;
  }

  // Put a dropped or pasted file into the form's file input, as if it had been picked.
  function take(picker, files) {
    var file = null;
    for (var i = 0; i < files.length; i++) {
      if (files[i].kind === undefined || files[i].kind === "file") {
        file = files[i].getAsFile ? files[i].getAsFile() : files[i];
        if (file) break;
      }
    }
    if (!file) return false;
    var input = picker.querySelector("input[type=file]");
    var transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    show(picker);
    return true;
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.matches && input.matches(".image-picker input[type=file]")) {
      show(input.closest(".image-picker"));
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".image-remove") : null;
    if (button) {
      var picker = button.closest(".image-picker");
      clear(picker);
      note(picker, "");
    }
  });

  document.addEventListener("dragover", function (event) {
    var picker = pickerOf(event.target);
    if (picker && event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0) {
      event.preventDefault();
      picker.classList.add("dragging");
    }
  });

  document.addEventListener("dragleave", function (event) {
    var picker = pickerOf(event.target);
    if (picker) picker.classList.remove("dragging");
  });

  document.addEventListener("drop", function (event) {
    var picker = pickerOf(event.target);
    if (!picker || !event.dataTransfer) return;
    picker.classList.remove("dragging");
    if (event.dataTransfer.files.length) {
      event.preventDefault();
      take(picker, event.dataTransfer.files);
    }
  });

  // Paste: into the form that has the focus, else the page's only picker.
  document.addEventListener("paste", function (event) {
    var pickers = document.querySelectorAll(".image-picker");
    var picker = pickerOf(document.activeElement) || (pickers.length === 1 ? pickers[0] : null);
    var data = event.clipboardData;
    if (!picker || !data) return;
    var files = data.files && data.files.length ? data.files : data.items || [];
    var hasFile = false;
    for (var i = 0; i < files.length; i++) {
      if (files[i].kind === undefined || files[i].kind === "file") hasFile = true;
    }
    if (hasFile && take(picker, files)) {
      event.preventDefault();
    }
  });

  // A refused send (4xx: the message shows in #flash) keeps the image in the form, to send
  // again, say with another model; a sent one leaves with the form that the answer replaces.
  // By status, not htmx's "successful": this page's responseHandling swaps error answers too.
  document.addEventListener("htmx:afterRequest", function (event) {
    var picker = pickerOf(event.target);
    var xhr = event.detail && event.detail.xhr;
    if (picker && xhr && xhr.status >= 200 && xhr.status < 300) {
      clear(picker);
    }
  });
})();

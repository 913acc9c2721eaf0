// The search form's only script: drag-and-drop of a picture, the sketch canvas (mouse, pen,
// finger; undo, clear, stroke width) and the weight slider's readout. The sketch is sent as a
// PNG file in the same form as everything else, so the server sees one multipart POST.
"use strict";
(function () {
  const form = document.getElementById("search-form");
  if (!form) return;

  // -- picture: file picker and drag-and-drop ------------------------------------------------
  const drop = document.getElementById("drop-zone");
  const fileInput = document.getElementById("image");
  const preview = document.getElementById("image-preview");
  function showPreview() {
    const file = fileInput.files && fileInput.files[0];
    if (!file || !file.type.startsWith("image/")) { preview.hidden = true; return; }
    preview.src = URL.createObjectURL(file);
    preview.alt = "the chosen picture: " + file.name;
    preview.hidden = false;
  }
  fileInput.addEventListener("change", showPreview);
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) {
      fileInput.files = event.dataTransfer.files;
      showPreview();
    }
  });

  // -- sketch canvas ---------------------------------------------------------------------------
  const canvas = document.getElementById("sketch-canvas");
  const context = canvas.getContext("2d");
  const width = document.getElementById("sketch-width");
  const strokes = [];  // each: {width, points: [[x, y], ...]}; redrawn whole on undo
  let current = null;

  function redraw() {
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.strokeStyle = "#000";
    context.lineCap = "round";
    context.lineJoin = "round";
    for (const stroke of strokes) {
      context.lineWidth = stroke.width;
      context.beginPath();
      stroke.points.forEach(([x, y], i) => (i ? context.lineTo(x, y) : context.moveTo(x, y)));
      if (stroke.points.length === 1) context.lineTo(stroke.points[0][0] + 0.1, stroke.points[0][1]);
      context.stroke();
    }
  }
  function point(event) {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  }
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    current = { width: Number(width.value), points: [point(event)] };
    strokes.push(current);
    redraw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!current) return;
    current.points.push(point(event));
    redraw();
  });
  ["pointerup", "pointercancel"].forEach((type) => canvas.addEventListener(type, () => { current = null; }));
  document.getElementById("sketch-undo").addEventListener("click", () => { strokes.pop(); redraw(); });
  document.getElementById("sketch-clear").addEventListener("click", () => { strokes.length = 0; redraw(); });
  redraw();

  // -- weight readout --------------------------------------------------------------------------
  const weight = document.getElementById("weight");
  const weightValue = document.getElementById("weight-value");
  weight.addEventListener("input", () => { weightValue.textContent = weight.value + " %"; });

  // -- submit: the sketch becomes a PNG file of the form ---------------------------------------
  let sending = false;
  form.addEventListener("submit", (event) => {
    if (sending || !strokes.length) return;  // nothing drawn: the form goes as it is
    event.preventDefault();
    canvas.toBlob((blob) => {
      const files = new DataTransfer();
      files.items.add(new File([blob], "sketch.png", { type: "image/png" }));
      document.getElementById("sketch").files = files.files;
      sending = true;
      form.requestSubmit();
    }, "image/png");
  });
})();

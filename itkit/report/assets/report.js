/* itkit report: filter and sort tables, open every collapsed block before printing. No network, no libraries. */
(function () {
  "use strict";
  function text(cell) { return (cell.getAttribute("data-v") || cell.textContent || "").trim(); }
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-filter"));
    var count = input.parentNode.querySelector(".count");
    if (!table) { return; }
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    function apply() {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean), shown = 0;
      rows.forEach(function (row) {
        var hay = row.textContent.toLowerCase();
        var ok = words.every(function (w) { return hay.indexOf(w) !== -1; });
        row.style.display = ok ? "" : "none";
        if (ok) { shown += 1; }
      });
      if (count) { count.textContent = shown + " of " + rows.length + " rows shown"; }
    }
    input.addEventListener("input", apply);
    apply();
  });
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.classList.add("sortable");
      th.addEventListener("click", function () {
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1;
        th.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
        rows.sort(function (a, b) {
          var x = text(a.cells[col]), y = text(b.cells[col]);
          var nx = parseFloat(x.replace(/,/g, "")), ny = parseFloat(y.replace(/,/g, ""));
          if (!isNaN(nx) && !isNaN(ny)) { return (nx - ny) * dir; }
          return x.localeCompare(y) * dir;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.setAttribute("open", ""); });
  });
})();

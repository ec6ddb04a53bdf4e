// Optional: click a column header to sort (the tables are already ordered without it);
// printing opens the configuration, since paper cannot be clicked.
window.addEventListener('beforeprint', function () {
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
});
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.title = 'click to sort'; th.tabIndex = 0;
  var sort = function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    th.parentNode.querySelectorAll('th').forEach(function (o) { o.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var key = function (tr) {
      var t = tr.children[idx].textContent.trim(), v = parseFloat(t);
      var bytes = /^(-?[0-9.]+) (Ki|Mi|Gi)?B$/.exec(t);  // update sizes in mixed units
      if (bytes) { v *= {Ki: 1024, Mi: 1048576, Gi: 1073741824}[bytes[2]] || 1; }
      return isNaN(v) ? t : v;
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (typeof x !== typeof y) { return typeof x === 'number' ? -1 : 1; }
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    }).forEach(function (tr) { body.appendChild(tr); });
  };
  th.addEventListener('click', sort);
  th.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sort(); }
  });
});

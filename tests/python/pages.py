"""Local test pages served from a background http.server thread on 127.0.0.1.

The browser under test never needs the internet: every page the suite loads
comes from here.
"""

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

INDEX = """<!doctype html>
<html><head><title>Gridiron Index</title></head>
<body>
  <h1 id="heading">Welcome to the index</h1>
  <p class="intro">This page exists for navigation tests.</p>
  <ul id="items">
    <li class="item">alpha</li>
    <li class="item">beta</li>
    <li class="item">gamma</li>
  </ul>
  <a id="to-second" href="/second.html">second page</a>
  <a id="to-form" href="/form.html">form page</a>
  <button id="btn" onclick="document.getElementById('out').textContent='clicked ' + (++window.clicks)">Click me</button>
  <div id="out">not clicked</div>
  <script>window.clicks = 0;</script>
</body></html>
"""

SECOND = """<!doctype html>
<html><head><title>Second Page</title></head>
<body><h1 id="heading">Second</h1><a id="to-index" href="/index.html">back to index</a></body></html>
"""

FORM = """<!doctype html>
<html><head><title>Form Page</title></head>
<body>
  <form id="f" onsubmit="return false;">
    <label>Name <input id="name" name="name" type="text" value=""></label>
    <label>Prefilled <input id="prefilled" type="text" value="keep me"></label>
    <textarea id="bio" name="bio"></textarea>
    <label><input id="agree" type="checkbox"> agree</label>
    <select id="color">
      <option value="red">Red</option>
      <option value="green">Green</option>
      <option value="blue">Blue</option>
    </select>
    <button id="submit" type="button" onclick="
      var r = document.getElementById('name').value + '|' +
              document.getElementById('bio').value + '|' +
              document.getElementById('agree').checked + '|' +
              document.getElementById('color').value;
      document.getElementById('result').textContent = r;">Submit</button>
  </form>
  <div id="result"></div>
</body></html>
"""

FRAMES = """<!doctype html>
<html><head><title>Frames Page</title></head>
<body>
  <p id="outer-text">outer document</p>
  <iframe id="inner-frame" name="inner" src="/frame_inner.html" width="400" height="200"></iframe>
</body></html>
"""

FRAME_INNER = """<!doctype html>
<html><head><title>Inner Frame</title></head>
<body>
  <p id="inner-text">inside the frame</p>
  <button id="inner-btn" onclick="document.getElementById('inner-text').textContent='frame clicked'">go</button>
  <iframe id="nested-frame" src="/frame_nested.html" width="200" height="80"></iframe>
</body></html>
"""

FRAME_NESTED = """<!doctype html>
<html><head><title>Nested Frame</title></head>
<body><p id="nested-text">deepest</p></body></html>
"""

ALERTS = """<!doctype html>
<html><head><title>Alerts Page</title></head>
<body>
  <button id="alert" onclick="alert('Hello from alert'); document.getElementById('alert-result').textContent='alert closed';">alert</button>
  <button id="confirm" onclick="document.getElementById('confirm-result').textContent = String(confirm('Are you sure?'));">confirm</button>
  <button id="prompt" onclick="var v = prompt('Your name?', 'nobody'); document.getElementById('prompt-result').textContent = (v === null ? 'null' : v);">prompt</button>
  <div id="alert-result"></div>
  <div id="confirm-result"></div>
  <div id="prompt-result"></div>
</body></html>
"""

WINDOWS = """<!doctype html>
<html><head><title>Windows Page</title></head>
<body>
  <a id="open-blank" href="/second.html" target="_blank">open second page in a new window</a>
</body></html>
"""

COOKIES = """<!doctype html>
<html><head><title>Cookies Page</title></head>
<body><p id="cookie-header">{cookie_header}</p></body></html>
"""

# The background cycles through COLOURS, one a second from the page's load
# (the video tests read the colours back out of recordings).
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
COLOUR_CYCLE = """<!doctype html>
<html><head><title>Colours</title><style>html, body {{ margin: 0; height: 100%; }}</style></head>
<body><script>
  var colours = {colours};
  var start = performance.now();
  function paint() {{
    var k = Math.floor((performance.now() - start) / 1000) % colours.length;
    document.body.style.background = colours[k];
    requestAnimationFrame(paint);
  }}
  paint();
</script></body></html>
""".format(colours=["rgb(%d,%d,%d)" % c for c in COLOURS])

# A page that logs, throws, and shows one flat colour (the live view's frames
# are checked for it).
DEVTOOLS = """<!doctype html>
<html><head><title>DevTools Page</title></head>
<body style="margin:0;background:#00c000;height:100vh">
<script>
console.log("gridiron-console-marker", 42);
console.warn("gridiron-warning-marker");
setTimeout(function () { throw new Error("gridiron-uncaught-marker"); }, 0);
</script>
</body></html>
"""

# Logs from inside a frame (loaded from another site: a frame of its own process).
DEVTOOLS_FRAME = """<!doctype html>
<html><body><script>console.log("gridiron-frame-marker");</script></body></html>
"""

DOWNLOADS = """<!doctype html>
<html><head><title>Downloads Page</title></head>
<body>
  <a id="download" href="/download.txt">download a file</a>
</body></html>
"""

# Shows the content of the file chosen in its file input, as the page reads it.
UPLOAD = """<!doctype html>
<html><head><title>Upload Page</title></head>
<body>
  <input type="file" id="file">
  <pre id="content"></pre>
  <script>
    document.getElementById("file").addEventListener("change", (e) => {
      const f = e.target.files[0];
      const reader = new FileReader();
      reader.onload = () => {
        document.getElementById("content").textContent = f.name + ":" + reader.result;
      };
      reader.readAsText(f);
    });
  </script>
</body></html>
"""

PAGES = {
    "/colours.html": COLOUR_CYCLE,
    "/": INDEX,
    "/downloads.html": DOWNLOADS,
    "/upload.html": UPLOAD,
    "/index.html": INDEX,
    "/second.html": SECOND,
    "/form.html": FORM,
    "/frames.html": FRAMES,
    "/frame_inner.html": FRAME_INNER,
    "/frame_nested.html": FRAME_NESTED,
    "/alerts.html": ALERTS,
    "/windows.html": WINDOWS,
    "/devtools.html": DEVTOOLS,
    "/devtools_frame.html": DEVTOOLS_FRAME,
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep the test output quiet
        pass

    def _send(self, status, body, extra_headers=()):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/favicon.ico":
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/cookies.html":
            # Shows the Cookie header the browser sent and sets a cookie.
            cookie_header = html.escape(self.headers.get("Cookie", ""))
            self._send(
                200,
                COOKIES.format(cookie_header=cookie_header),
                [("Set-Cookie", "server_cookie=from_server; Path=/")],
            )
            return
        if path == "/echo-cookies.html":
            # Shows the Cookie header without setting anything.
            cookie_header = html.escape(self.headers.get("Cookie", ""))
            self._send(200, COOKIES.format(cookie_header=cookie_header))
            return
        if path == "/cross-site-form.html":
            # Another site's page that posts a form to `action` as soon as it
            # loads, with the given fields (the dashboard must refuse it).
            query = parse_qs(urlsplit(self.path).query)
            action = html.escape(query.get("action", [""])[0])
            fields = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v[0])}">'
                for k, v in query.items()
                if k != "action"
            )
            self._send(
                200,
                f'<!doctype html><title>Another site</title><form id="f" method="post" action="{action}">'
                f"{fields}</form><script>document.getElementById('f').submit()</script>",
            )
            return
        if path == "/download.txt":
            # A file the browser saves instead of showing.
            self._send(
                200,
                "gridiron download\n",
                [("Content-Disposition", 'attachment; filename="gridiron-download.txt"')],
            )
            return
        body = PAGES.get(path)
        if body is None:
            self._send(404, "<!doctype html><title>Not Found</title><p>not found</p>")
            return
        self._send(200, body)


class PageServer:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="page-server", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        if not path.startswith("/"):
            path = "/" + path
        return self.base + path

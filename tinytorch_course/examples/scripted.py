"""A submission whose text tries to run in every page that shows it (test data, like attacks.py).

Each payload would set a global `window.PWN_<place>` in the browser of whoever opens the page: the
instructor in formgrader (on the Jupyter server's origin, with their session), the student or the
instructor on the feedback page, the instructor on the class report. In markdown, attributes are
quoted: CommonMark reads `onerror=a=1` (an `=` in an unquoted value) as text, not HTML. `PLACES` names every place a
student's text reaches a page; tests/test_inert_pages.py opens each page in Chromium and checks that
none of the globals exists, that no link runs JavaScript, and that the text and images still show.
"""

import base64
import struct
import zlib

from .edits import append_cell, append_code, replace, rewrite


def _png(width: int, height: int) -> str:
    "A solid orange PNG of this size, base64 (what a student's figure looks like to nbconvert)."

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x80\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return base64.b64encode(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    ).decode()


FIGURE = (17, 11)  # a student's honest figure, which must still show
PNG = _png(*FIGURE)

PLACES = {
    "PWN_md_script": "a <script> in a markdown cell",
    "PWN_md_img": "an <img onerror> in a markdown cell",
    "PWN_md_alt": "an image's alt text breaking out of its attribute, in markdown",
    "PWN_md_link": "a javascript: link in markdown (must not exist as a link)",
    "PWN_answer": "an <img onerror> in a written answer",
    "PWN_answer_script": "a <script> in a written answer",
    "PWN_stream": "a <script> printed to stdout",
    "PWN_html_script": "a <script> in display(HTML(...))",
    "PWN_html_img": "an <img onerror> in display(HTML(...))",
    "PWN_html_alt": "an <img> whose alt text holds markup, in display(HTML(...))",
    "PWN_js": "display(Javascript(...))",
    "PWN_svg": "an SVG output with onload",
    "PWN_svg_script": "an SVG output with a <script>",
    "PWN_md_output": "display(Markdown(...)) with an <img onerror>",
    "PWN_png_width": "an image output whose width metadata adds an onload attribute",
    "PWN_raw": "a raw HTML cell with a <script>",
    "PWN_error": "an error message holding a <script> (traceback, and the class report's messages)",
}

ANSWER = "My answer: 112 GB in all, so two 80 GB devices."

_MARKDOWN = """\
My notes. <script>window.PWN_md_script=1</script>
<img src=x onerror="window.PWN_md_img=1">

![x" onerror="window.PWN_md_alt=1](missing.png)

[open my notes](javascript:window.PWN_md_link=1)
"""

_OUTPUTS = f"""\
from IPython.display import HTML, SVG, Image, Javascript, Markdown, display, publish_display_data
import base64
print("<script>window.PWN_stream=1</script>")
display(HTML("<b>table</b><script>window.PWN_html_script=1</script><img src=x onerror=window.PWN_html_img=1>"))
display(HTML('<img src=x alt="<img src=y onerror=window.PWN_html_alt=1>">'))
display(Javascript("window.PWN_js=1"))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" onload="window.PWN_svg=1">'
            '<script>window.PWN_svg_script=1</script></svg>'))
display(Markdown('<img src=x onerror="window.PWN_md_output=1">'))
publish_display_data({{"image/png": "{PNG}", "text/plain": "a figure"}},
                     metadata={{"image/png": {{"width": "17 onload=window.PWN_png_width=1"}}}})
display(Image(data=base64.b64decode("{PNG}")))  # an honest figure: it must still show
"""

SCRIPTED = {
    "scripts-in-pages": [
        append_cell("sgd-class", "markdown", _MARKDOWN),
        append_cell("sgd-class", "raw", "<script>window.PWN_raw=1</script>", metadata={"raw_mimetype": "text/html"}),
        append_code("sgd-class", _OUTPUTS),
        rewrite(
            "written-memory-at-scale",
            f'{ANSWER} <img src=x onerror="window.PWN_answer=1"> <script>window.PWN_answer_script=1</script>\n',
        ),
        replace(  # no digit in the payload: the class report blanks the numbers of its messages
            "memory-estimate",
            '    buffers = {"sgd"',
            '    raise ValueError("<script>window.PWN_error=true</script>")\n    buffers = {"sgd"',
        ),
    ],
}

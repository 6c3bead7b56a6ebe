"""Student text on a page runs nothing: the notebook formgrader shows, the feedback page, the class report.

A submission's text reaches three pages. nbgrader's formgrader renders the autograded notebook with
nbconvert inside its own page, on the Jupyter server's origin and with the instructor's session;
`make feedback` renders it with nbconvert too; `make report` writes our own page. nbconvert does not
make a notebook safe to show (nbconvert's own `SanitizeHTML` is not run by default, and even it
would leave a live `javascript:` link in markdown and the unquoted `width=` of an image). So the
writer stores, and feedback renders, a notebook made inert here, after its grades are recorded:

- **Markdown** (cells, written answers, `text/markdown` outputs) is parsed with nbconvert's own
  markdown parser, the one that renders it. Markdown that holds raw HTML, or a link or image whose
  address is not `http(s):`/`mailto:` (an image: not a data or attached PNG, JPEG or GIF), is kept
  as text in a fenced code block: the instructor reads every character and nothing of it renders.
  Plain markdown (prose, code, math, lists, tables, web links) is left exactly as written.
- **HTML outputs** go through bleach, the sanitizer nbconvert's `SanitizeHTML` uses, with a short
  allow-list (text, tables, lists, headings, web links); anything else is escaped and shows as text.
- **Other rich outputs** (JavaScript, SVG, widgets, Mermaid, PDF...) are dropped and a line says so;
  plain text, PNG, JPEG, LaTeX, streams and errors stay (nbconvert escapes them).
- **Output metadata** keeps only numeric `width`/`height` and the image flags nbconvert reads
  (nbconvert writes `width={{ width }}` unquoted, so `"1 onload=..."` would become an attribute).
- **Execution counts** are integers or nothing: nbconvert prints `In [..]` unescaped, and the kernel
  that reports them runs the student's code.
- **Notebook metadata** loses its widget state (nbconvert would load the widget manager from a CDN).

Pages we write carry a Content-Security-Policy that forbids every script (`with_csp`): the class
report and the feedback page (`InertHTMLExporter`, configured in nbgrader_config.py). Formgrader's
page runs its own scripts, so there the inert notebook is what protects the instructor.
"""

import copy
import functools
import html
import itertools

import bleach
from nbconvert.exporters import HTMLExporter
from nbgrader.preprocessors import NbGraderPreprocessor

# Scripts, frames, forms, plugins, fonts and remote images are all refused; only inline styles and data: images load.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'

LINKS = ("http://", "https://", "mailto:", "#")
IMAGES = ("data:image/png;base64,", "data:image/jpeg;base64,", "data:image/gif;base64,")
ATTACHED = ("image/png", "image/jpeg", "image/gif")  # what a markdown cell may attach
AS_TEXT_NOTE = "_Shown as text: this cell holds HTML or a link that pages showing student work do not render._"

HTML_TAGS = {
    *("p", "div", "span", "br", "hr", "blockquote", "pre", "code", "b", "i", "em", "strong", "sub", "sup"),
    *("ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a"),
    *("table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td"),
}
HTML_ATTRIBUTES = {"a": ["href", "title"], "th": ["colspan", "rowspan"], "td": ["colspan", "rowspan"]}
HTML_PROTOCOLS = {"http", "https", "mailto"}

KEPT = {"text/plain", "image/png", "image/jpeg", "text/latex"}  # nbconvert escapes these (or embeds them as data)
IMAGE_FLAGS = {"width", "height", "needs_background", "unconfined"}


def with_csp(page: str) -> str:
    "A whole HTML page with our Content-Security-Policy as the first element of its <head>."
    head = page.find("<head>")
    if head < 0:
        raise ValueError("not an HTML page with a <head>")
    at = head + len("<head>")
    return page[:at] + "\n" + CSP_META + page[at:]


def inert_html(fragment: str) -> str:
    "An HTML fragment with every tag, attribute and address outside the allow-list escaped or removed (bleach)."
    return bleach.clean(
        fragment,
        tags=HTML_TAGS,
        attributes=HTML_ATTRIBUTES,
        protocols=HTML_PROTOCOLS,
        strip=False,
        strip_comments=True,
    )


def _address(url) -> str:
    "An address as a browser reads it: entities decoded, no tabs or newlines, no leading control characters."
    text = html.unescape(str(url)).replace("\t", "").replace("\n", "").replace("\r", "")
    return text.lstrip("".join(map(chr, range(33)))).lower()


def _safe_tokens(tokens, attached) -> bool:
    for token in tokens:
        kind = token.get("type")
        if kind in ("block_html", "inline_html"):
            return False
        if kind in ("link", "image"):
            url = str(token.get("attrs", {}).get("url", ""))
            address = _address(url)
            if kind == "link" and not address.startswith(LINKS):
                return False
            if kind == "image" and not (address.startswith(IMAGES) or url in attached):
                return False
        if not _safe_tokens(token.get("children", []), attached):
            return False
    return True


def markdown_is_inert(source: str, attachments=()) -> bool:
    """Whether nbconvert renders `source` without raw HTML, with only web links, and with only data
    images or images among `attachments` (names; nbconvert fails on a missing one)."""
    if len(source) > 16_384:  # remembered below only up to 4096 x 16 KiB
        return _inert.__wrapped__(source, frozenset(attachments))
    return _inert(source, frozenset(attachments))


@functools.lru_cache(maxsize=4096)
def _inert(source: str, attachments: frozenset) -> bool:
    "`markdown_is_inert`, remembered: most of a class's markdown is the module's own, parsed once per process."
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    attached = {f"attachment:{name}" for name in attachments}
    return _safe_tokens(MarkdownWithMath(renderer=None)(source), attached)


def as_text(source: str) -> str:
    "Markdown that shows `source` verbatim: a fenced code block longer than any run of backticks in it."
    longest = max((len(list(run)) for char, run in itertools.groupby(source) if char == "`"), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{AS_TEXT_NOTE}\n\n{fence}\n{source}\n{fence}"


def inert_markdown(source: str, attachments=()) -> str:
    "`source` unchanged when it renders inert, else the same text as a code block."
    if markdown_is_inert(source, attachments):
        return source
    text = as_text(source)
    assert markdown_is_inert(text), "a fenced code block rendered as markup"
    return text


def _image_metadata(meta) -> dict:
    "The flags nbconvert reads for an image, when they have the type it expects; nothing else."
    if not isinstance(meta, dict):
        return {}
    kept = {}
    for key in IMAGE_FLAGS & set(meta):
        value = meta[key]
        if key in ("width", "height") and isinstance(value, (int, float)) and not isinstance(value, bool):
            kept[key] = value
        elif key == "needs_background" and value in ("light", "dark"):
            kept[key] = value
        elif key == "unconfined" and isinstance(value, bool):
            kept[key] = value
    return kept


def inert_output(output) -> None:
    "Make one output inert in place (see the module docstring)."
    if output.get("output_type") not in ("display_data", "execute_result"):
        return  # stream and error outputs: nbconvert escapes their text
    data, removed = output.get("data", {}), []
    for mime in list(data):
        value = data[mime]
        if mime == "text/html" and isinstance(value, str):
            data[mime] = inert_html(value)
        elif mime == "text/markdown" and isinstance(value, str) and markdown_is_inert(value):
            continue
        elif mime not in KEPT or not isinstance(value, str):
            removed.append(mime)
            if mime == "text/markdown" and isinstance(value, str) and "text/plain" not in data:
                data["text/plain"] = value  # the markdown, as text
            del data[mime]
    if removed and "text/plain" not in data:
        data["text/plain"] = f"[output of type {', '.join(removed)} not shown: pages showing student work run no code]"
    if "execution_count" in output:
        output["execution_count"] = _count(output["execution_count"])
    meta = output.get("metadata", {})
    output["metadata"] = {
        mime: flags
        for mime in ("image/png", "image/jpeg")
        if isinstance(meta, dict) and (flags := _image_metadata(meta.get(mime)))
    }


def inert_notebook(nb):
    "Make a notebook inert in place and return it: markdown, outputs and metadata as the module docstring says."
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            attachments = {
                name: {mime: data for mime, data in bundle.items() if mime in ATTACHED and isinstance(data, str)}
                for name, bundle in cell.get("attachments", {}).items()
                if isinstance(bundle, dict)
            }
            attachments = {name: bundle for name, bundle in attachments.items() if bundle}
            if "attachments" in cell:
                cell.attachments = attachments
            cell.source = inert_markdown(cell.source, attachments)
        elif cell.cell_type == "code":
            cell.execution_count = _count(cell.get("execution_count"))
            for output in cell.get("outputs", []):
                inert_output(output)
    return nb


def _count(value):
    "An execution count as nbconvert may print it unescaped (`In [..]`): an integer, or None."
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class MakeInert(NbGraderPreprocessor):
    """Student text that would run in a page becomes text (see `inert_notebook`).

    Last of the writer's preprocessors (after the grades are recorded, so nothing graded changes) and
    of feedback's: the autograded notebook formgrader shows and the feedback page are both inert.
    """

    def preprocess(self, nb, resources):
        return inert_notebook(nb), resources


class InertHTMLExporter(HTMLExporter):
    "nbconvert's HTMLExporter, for feedback: the notebook made inert and the page's scripts forbidden by CSP."

    def from_notebook_node(self, nb, resources=None, **kw):
        output, resources = super().from_notebook_node(inert_notebook(copy.deepcopy(nb)), resources, **kw)
        return with_csp(output), resources

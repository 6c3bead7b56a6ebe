"""The service's HTML: the instructor's login form and status page, and their style sheet.

Every page is served under `CSP`: no script runs (we wrote none), styles come only from our own
style sheet, forms post only to us, and no other site may frame the page. Every piece of text that
reaches a page (student ids, statuses, the judge's messages) goes through `html.escape`. Bars are
`<meter>` elements, which need neither script nor inline style. The status page reloads itself
every 15 s with a `<meta>` refresh.
"""

from __future__ import annotations

import datetime
import html

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STYLE = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px;text-align:left}
.num{text-align:right}.big{font-size:2em;font-weight:600}.card{display:inline-block;margin:0 2em 1em 0}
meter{width:240px}.error{color:#a00}form.inline{display:inline}
"""


def page(title: str, body: str, refresh: int | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{html.escape(title)}</title>'
        f'<link rel="stylesheet" href="/style.css"></head><body>{body}</body></html>'
    )


def login(message: str = "") -> str:
    note = f'<p class="error" id="login-error">{html.escape(message)}</p>' if message else ""
    return page(
        "Hand-in service: sign in",
        f"""<h1>Hand-in service</h1>{note}
<form method="post" action="/login"><label>Instructor token
<input type="password" name="token" autocomplete="off" size="60" required></label>
<button type="submit">Sign in</button></form>""",
    )


def _clock(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _points(p) -> str:
    return "" if p is None else f"{p:.1f}"


def _seconds(s) -> str:
    return "–" if s is None else f"{s:.1f} s"


def status(info: dict, course: str) -> str:
    "The instructor's status page from `queue.status`."
    esc = html.escape
    slots = "".join(
        f"<tr><td>{esc(s['name'])}</td><td>{esc(s['engine'])}</td><td>{esc(s['host'])}</td>"
        f"<td>{'grading #' + str(int(s['submission'])) if s['submission'] else 'idle'}</td>"
        f"<td class='num'>{s['age']:.0f} s ago</td></tr>"
        for s in info["slots"]
    )
    top = max(info["per_hour"] + [1])
    hours = "".join(
        f"<tr><td>{'this hour' if i == 0 else f'{i} h ago'}</td><td class='num'>{n}</td>"
        f"<td><meter min='0' max='{top}' value='{n}'>{n}</meter></td></tr>"
        for i, n in enumerate(info["per_hour"][:12])
    )
    recent = "".join(
        f"<tr><td>{esc(r['student'])}</td><td class='num'>{r['attempt']}</td><td>{esc(str(r['status']))}</td>"
        f"<td class='num'>{_points(r['score'])}</td>"
        f"<td>{_clock(r['received_at'])}</td><td class='num'>{r['to_verdict']:.1f} s</td>"
        f"<td class='num'>{r['runs']}</td></tr>"
        for r in info["recent"][:20]
    )
    body = f"""<h1>Hand-in service: {esc(course)}</h1>
<p>At {_clock(info["now"])}. This page reloads every 15 s. <form class="inline" method="post" action="/logout">
<button type="submit">Sign out</button></form></p>
<div class="card"><div class="big" id="queued">{info["queued"]}</div>queued</div>
<div class="card"><div class="big" id="grading">{info["grading"]}</div>grading now</div>
<div class="card"><div class="big" id="workers">{len(info["slots"])}</div>grading slots alive</div>
<div class="card"><div class="big" id="p50">{_seconds(info["p50"])}</div>median time to verdict</div>
<div class="card"><div class="big" id="p95">{_seconds(info["p95"])}</div>95th percentile</div>
<p>{info["done"]} verdicts given; {info["failed"]} submissions the grader failed on (tokens refunded).</p>
<h2 id="slots">Grading slots</h2>
<table><tr><th>slot</th><th>engine</th><th>host</th><th>now</th><th>heartbeat</th></tr>{slots}</table>
<h2 id="per-hour">Hand-ins per hour</h2>
<table><tr><th>hour</th><th>hand-ins</th><th></th></tr>{hours}</table>
<h2 id="recent">Recent verdicts</h2>
<table><tr><th>student</th><th>attempt</th><th>status</th><th>points</th><th>received</th><th>to verdict</th>
<th>runs</th></tr>{recent}</table>"""
    return page(f"Hand-in service: {course}", body, refresh=15)

"""The server's page, `GET /`: a plain form to choose images and post them (to `POST /`, which answers with the same
page and the probabilities drawn as bars); and, on a server with a token, the login page that asks for it first
(`pipeline.serving.auth`). HTML and CSS only: no JavaScript, nothing loaded from elsewhere."""

from html import escape
from typing import Any

from pipeline.serving.uploads import FIELD

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.5rem; } .muted { color: #666; }
form { margin: 1rem 0; padding: 1rem; border: 1px solid #ccc; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; } td { padding: 0.15rem 0.4rem; }
td.class { width: 9rem; } td.value { width: 4rem; text-align: right; font-variant-numeric: tabular-nums; }
.bar { background: #e8eef7; height: 1.1rem; } .bar span { display: block; height: 100%; background: #3b6fb6; }
.error { padding: 0.8rem; border: 1px solid #c33; background: #fdecec; border-radius: 6px; }
"""


def page(facts: dict[str, Any], predictions: list[dict[str, Any]] | None = None, error: str = "") -> str:
    """The page for the model `facts` describes (`pipeline.serving.facts`): the form, then either the
    `predictions` (as `POST /predict` gives them, each with its `top` classes) or the `error` of the last post."""
    name = escape(facts["name"])
    body = [
        f"<h1>{name}</h1>",
        f'<p class="muted">{_about(facts)}</p>',
        '<form action="/" method="post" enctype="multipart/form-data">',
        f'<input type="file" name="{FIELD}" accept="image/*" multiple required> <button type="submit">Predict</button>',
        "</form>",
    ]
    if error:
        body.append(_error(error))
    for prediction in predictions or []:
        body += [f"<h2>{escape(prediction['filename'])}</h2>", "<table>", *map(_row, prediction["top"]), "</table>"]
    return _document(f"{name}: pipeline serve", body)


def login_page(action: str, field: str, error: str = "") -> str:
    """The page a browser without the server's token gets: a password field `field` posted to `action`, and the
    `error` of the last try."""
    body = [
        "<h1>pipeline serve</h1>",
        '<p class="muted">This server asks for its token: the --token or PIPELINE_SERVE_TOKEN it was started with.</p>',
        f'<form action="{action}" method="post">',
        f'<input type="password" name="{field}" autocomplete="current-password" required>',
        '<button type="submit">Enter</button>',
        "</form>",
    ]
    if error:
        body.append(_error(error))
    return _document("token needed: pipeline serve", body)


def _error(message: str) -> str:
    return f'<p class="error">{escape(message)}</p>'


def _document(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{title}</title><style>{STYLE}</style></head>",
            "<body>",
            *body,
            "</body></html>",
            "",
        ]
    )


def _about(facts: dict[str, Any]) -> str:
    classes = ", ".join(facts["classes"])
    parts = [f"{len(facts['classes'])} classes: {classes}"]
    if facts.get("arch"):
        parts.insert(0, f"architecture {facts['arch']}, dataset {facts['dataset']}")
    if facts.get("test"):
        parts.append(f"test accuracy {facts['test']['accuracy']:.3f}")
    return escape("; ".join(parts))


def _row(ranked: dict[str, Any]) -> str:
    share = ranked["probability"] * 100
    return (
        f'<tr><td class="class">{escape(ranked["class"])}</td>'
        f'<td><div class="bar"><span style="width: {share:.1f}%"></span></div></td>'
        f'<td class="value">{ranked["probability"]:.3f}</td></tr>'
    )

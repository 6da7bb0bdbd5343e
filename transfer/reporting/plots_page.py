"""A page template for `dvc plots show` and `dvc plots diff` that draws offline.

DVC's own page loads Vega, Vega-Lite and vega-embed from a CDN, so on a machine
without internet access every chart is blank. This template inlines the three
libraries from vl-convert-python's bundle (a pinned, maintained package: no
minified JavaScript in git). `.dvc/config` points DVC at it
(`plots.html_template = ../plots/offline_page.html`, relative to `.dvc/`). It is
an output of the evaluate stage (cached by DVC like the plots it draws, so
`dvc pull` brings it too); `transfer plots-template` writes it any time.
"""

from pathlib import Path

from transfer.core.io import atomic_path

TEMPLATE_FILE = Path("plots") / "offline_page.html"
# DVC's plot templates are Vega-Lite v5 specifications.
VEGA_LITE_VERSION = "5.21"

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- Vega {vega}, Vega-Lite {vega_lite} and vega-embed {vega_embed}, inlined by
         `transfer plots-template` from vl-convert-python {vl_convert}: no network needed. -->
    <script>
BUNDLE
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page_template():
    """The template's text: DVC fills {plot_divs} (and {refresh_tag}) in."""
    from importlib.metadata import version

    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE_VERSION)
    # Inside a <script> element only "</script" can end it early.
    bundle = bundle.replace("</script", "<\\/script")
    filled = (
        PAGE.replace("{vega}", vl_convert.get_vega_version())
        .replace("{vega_lite}", VEGA_LITE_VERSION)
        .replace("{vega_embed}", vl_convert.get_vega_embed_version())
        .replace("{vl_convert}", version("vl-convert-python"))
    )
    return filled.replace("BUNDLE", bundle)


def write_template(repo_root="."):
    """Write plots/offline_page.html under repo_root; returns its path."""
    path = Path(repo_root) / TEMPLATE_FILE
    with atomic_path(path) as temporary:
        temporary.write_text(page_template(), encoding="utf8")
    return path

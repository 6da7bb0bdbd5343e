"""The offline page template for `dvc plots show`/`diff` (drawn in a browser in tests/test_pipeline.py)."""

import os
import re
import subprocess
import sys

import pytest
from dvc_render.html import HTML

from tests.conftest import PROJECT_ROOT
from transfer.reporting.plots_page import TEMPLATE_FILE, page_template


@pytest.fixture(scope="module")
def template():
    return page_template()


def test_the_page_loads_nothing_from_the_network(template):
    assert not re.search(r"<script[^>]+src=", template)
    assert "cdn.jsdelivr" not in template and "<link" not in template
    # The libraries are inline: vega-embed, Vega-Lite and Vega, one script element.
    assert "vegaEmbed" in template and "vegaLite" in template
    assert template.count("<script>") == 1 and template.count("</script") == 1


def test_dvc_fills_the_template_with_the_charts(template):
    page = HTML(template).with_element("<div id='roc'></div><script>vegaEmbed('#roc', {});</script>")
    html = page.embed()
    assert "<div id='roc'></div>" in html and "{plot_divs}" not in html
    assert html.index("vegaEmbed('#roc'") > html.index("</script>")  # after the libraries load


def plots_template_command(folder):
    return subprocess.run(
        [sys.executable, "-m", "transfer", "plots-template"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_writes_the_template_where_dvc_config_points(tmp_path):
    config = (PROJECT_ROOT / ".dvc" / "config").read_text()
    # Relative to .dvc/: the file the evaluate stage declares as an output.
    assert re.search(r"\[plots\]\s+html_template = \.\./plots/offline_page\.html", config)
    assert TEMPLATE_FILE.as_posix() == "plots/offline_page.html"
    assert "plots/offline_page.html" in (PROJECT_ROOT / "dvc.yaml").read_text()
    (tmp_path / ".dvc").mkdir()
    command = [sys.executable, "-m", "transfer", "plots-template"]
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / TEMPLATE_FILE).read_text(encoding="utf8") == page_template()


def test_the_command_help_names_the_file_it_writes():
    result = subprocess.run(
        [sys.executable, "-m", "transfer", "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert f"write {TEMPLATE_FILE.as_posix()}:" in " ".join(result.stdout.split())
    assert "offline_plots.html" not in result.stdout


def test_without_a_dvc_folder_the_command_is_one_line_and_exit_2(tmp_path):
    command = [sys.executable, "-m", "transfer", "plots-template"]
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr == "error: no .dvc folder here: run this at the top of the project\n"
    assert not (tmp_path / TEMPLATE_FILE).exists()

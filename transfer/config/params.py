"""params.yaml: loading and one schema that every stage checks first.

Each stage validates the whole file before doing any work, so a typo in a
late stage's section fails the first stage that runs instead of an hour in.
"""

import difflib
import re
from pathlib import Path

import yaml

from transfer.config.schema import SCHEMA
from transfer.core.errors import PipelineError, one_line
from transfer.models.backbones import check_params as check_model_params

# How to take back a `dvc exp run -S` whose run failed: DVC leaves the value in params.yaml.
UNDO_HINT = "`git checkout params.yaml` restores the committed file"


class _Loader(yaml.SafeLoader):
    """safe_load, but floats as YAML 1.2 writes them: `dvc exp run -S lr=0.00001`
    stores 1e-05, which PyYAML's YAML 1.1 rules would read as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _did_you_mean(name, candidates):
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def validate(params):
    """Raise PipelineError naming the first key that breaks the schema."""
    if not isinstance(params, dict):
        raise PipelineError("params.yaml must be a mapping of sections")
    for section, value in params.items():
        if section not in SCHEMA:
            raise PipelineError(f"params.yaml: unknown section '{section}'{_did_you_mean(section, SCHEMA)}")
        if not isinstance(value, dict):
            raise PipelineError(f"params.yaml: section '{section}' must be a mapping")
    for section, keys in SCHEMA.items():
        values = params.get(section)
        if values is None:
            raise PipelineError(f"params.yaml: missing section '{section}'")
        for key in values:
            if key not in keys:
                raise PipelineError(f"params.yaml: unknown key '{section}.{key}'{_did_you_mean(key, keys)}")
        for key, (check, allowed, _) in keys.items():
            if key not in values:
                raise PipelineError(f"params.yaml: missing key '{section}.{key}'")
            if not check(values[key]):
                raise PipelineError(
                    f"params.yaml: {section}.{key} = {values[key]!r} is invalid: must be {allowed}"
                )
    for section in ("train_head", "finetune"):
        values = params[section]
        if values["warmup_epochs"] >= values["epochs"]:
            raise PipelineError(
                f"params.yaml: {section}.warmup_epochs = {values['warmup_epochs']} is invalid: "
                f"must be below {section}.epochs ({values['epochs']})"
            )
    if params["data"]["unlabeled"] != "none" and params["data"]["source"] != "folder":
        raise PipelineError(
            "params.yaml: data.unlabeled (a pool of unlabelled photos) needs data.source folder: "
            "its labelled photos join data.path's"
        )
    # What the stages that build a network need of the model section, checked here so the first
    # stage of a run refuses it, not extract after prepare has run.
    check_model_params(params)
    return params


def load_params(path="params.yaml"):
    """Read and validate params.yaml; returns the nested dict."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"params file not found: {path}")
    try:
        params = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as error:
        raise PipelineError(f"{path} is not valid YAML: {one_line(error)}") from None
    try:
        return validate(params)
    except PipelineError as error:
        # `dvc exp run -S` leaves the value it set in the workspace's params.yaml when the run fails.
        raise PipelineError(f"{error} (a value set by `dvc exp run -S`? {UNDO_HINT})") from None

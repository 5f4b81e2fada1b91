"""The generated references (docs/reference/) are current: a settings key, a feature unit or a rule
changed without `make docs` fails here, with the command that fixes it."""

from __future__ import annotations

from pydantic import BaseModel

from chainsentry.config import Settings
from chainsentry.reference import DOCS, REFERENCES, config_reference, detection_reference
from detectors.rules import load_rules
from detectors.units import feature_names


def test_the_generated_references_are_current() -> None:
    for name, make in REFERENCES.items():
        path = DOCS / name
        assert path.exists() and path.read_text() == make(), f"{path} is stale: run `make docs`"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, prefix + name + ".")
        else:
            out.append(prefix + name)
    return out


def test_every_key_feature_and_rule_is_documented() -> None:
    config, detection = config_reference(), detection_reference()
    keys = _keys(Settings)
    assert len(keys) > 40 and all(f"| `{k}` |" in config for k in keys)
    assert "`CHAINSENTRY_DETECTORS__HST__WINDOW`" in config and "`CHAINSENTRY_API_TOKEN`" in config
    assert all(f"`{f}`" in detection for f in feature_names())
    rules = load_rules()
    assert all(f"| `{r.name}` |" in detection for r in rules.rules)
    assert all(f"| `{e.feature}` |" in detection for e in rules.evidence)

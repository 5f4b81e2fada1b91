"""Rules for known attack shapes, written as data (YAML), not code.

:class:`ShapeDetector` sums weighted evidence terms into a raw score (see
``rules/default.yaml``); :meth:`RuleSet.matches` returns the named rules whose every condition
holds. Both read only the feature dict, so a rule file can be changed without touching code and
is validated on load (unknown features, operators or keys are refused with the file and the place).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ingest.errors import UserError

from .base import Batch, Contribution, Features, Score
from .features import feature_names

SEVERITIES = ("info", "low", "medium", "high", "critical")
TYPES = ("exploit", "suspicious", "scam", "info")
_OPS = (">=", ">", "<=", "<", "==")  # what a condition may use (compiled to Python's own: _compile_matches)


class RuleError(UserError, ValueError):
    """A rule file that cannot be used."""


@dataclass(frozen=True, slots=True)
class Evidence:
    feature: str
    transform: str
    weight: float
    over: float = 0.0
    why: str = ""
    group: str | None = None  # terms of one group share the group's cap (see RuleSet.caps)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    conditions: tuple[tuple[str, str, float], ...]
    severity: str
    type: str
    title: str
    min_score: float | None = None  # fused score that corroborates it (default: the engine's rule_min_score)
    evidence: float = 0.0  # evidence it adds to the score when it holds (a specific conjunction)


@dataclass(frozen=True)
class RuleSet:
    evidence: tuple[Evidence, ...]
    rules: tuple[Rule, ...]
    source: str
    caps: dict[str, float] = field(default_factory=dict)  # group -> the most evidence its terms add up to
    _specialised: dict[tuple[str, ...], tuple[Any, Any]] = field(default_factory=dict, init=False, repr=False,
                                                                 compare=False)

    def __post_init__(self) -> None:
        # The rule file is compiled to two Python functions (one branch per term or condition, no
        # loop over the file per transaction): this is what every transaction pays, so it is the
        # hot path. Only validated feature names, numbers (repr round-trips floats) and indexes go
        # into the generated source; the texts stay in tuples it indexes.
        object.__setattr__(self, "matches", _compile_matches(self.rules))
        object.__setattr__(self, "contributions", _compile_contributions(self.evidence, self.caps))
        # assess() runs a pair compiled for the exact features present (tuple(x): a transaction
        # of a given kind always fills its dict in the same order, so there are few such tuples:
        # 7 on wallets-dev, 17 on attacks-dev). It reads only those features, with no lookups of
        # absent ones; same results as the general pair. Bounded: past _SPECIALISED_MAX feature
        # sets, the general pair serves the rest.

    def assess(self, x: Features) -> tuple[list[Contribution], list[Rule]]:
        """(evidence, named rules that hold) for ``x``: the terms that fire, plus, when specific
        rules hold, the most ``evidence`` any of them carries (once, as ``rule:<name>``), largest first.
        """
        key = tuple(x)
        pair = self._specialised.get(key)
        if pair is None:
            pair = self._specialise(key)
        explained = pair[0](x)
        matched = pair[1](x)
        if matched:
            # a rule is a conjunction the additive terms cannot express: a specific one says so
            top = max(matched, key=_rule_evidence)
            if top.evidence:
                explained.append(Contribution(f"rule:{top.name}", 1.0, top.evidence, top.title))
                explained.sort(key=_by_contribution)
        return explained, matched

    def _specialise(self, present: tuple[str, ...]) -> tuple[Callable[[Features], list[Contribution]],
                                                              Callable[[Features], list[Rule]]]:
        specialised = self._specialised
        if len(specialised) >= _SPECIALISED_MAX:
            return self.contributions, self.matches
        keys = frozenset(present)
        pair = (_compile_contributions(self.evidence, self.caps, keys), _compile_matches(self.rules, keys))
        specialised[present] = pair
        return pair

    # replaced per instance by the compiled functions (see __post_init__); documented here
    def matches(self, x: Features) -> list[Rule]:  # pragma: no cover
        """The named rules whose every condition holds for ``x``."""
        raise NotImplementedError

    def contributions(self, x: Features) -> list[Contribution]:  # pragma: no cover
        """Every evidence term that fires for ``x``, largest first (only features present are read);
        the terms of a capped group are scaled down together to the group's cap."""
        raise NotImplementedError


_SPECIALISED_MAX = 512  # feature sets with a compiled pair of their own (~1 ms to compile each)


def _compile_matches(rules: tuple[Rule, ...],
                     present: frozenset[str] | None = None) -> Callable[[Features], list[Rule]]:
    """The rules as one function. With ``present``, for dicts holding exactly those features: a rule
    reading any other cannot hold and is left out, and the features it reads are not looked up."""
    lines = ["def matches(x):", "    out = []"]
    if present is None:  # the specialised function indexes x directly
        lines.insert(1, "    get = x.get")
    for i, rule in enumerate(rules):
        if present is not None and any(feature not in present for feature, _, _ in rule.conditions):
            continue
        pad = "    "
        for feature, op, number in rule.conditions:
            if present is None:
                lines.append(f"{pad}v = get({feature!r})")
                lines.append(f"{pad}if v is not None and v {op} {float(number)!r}:")
            else:
                lines.append(f"{pad}if x[{feature!r}] {op} {float(number)!r}:")
            pad += "    "
        lines.append(f"{pad}out.append(_R[{i}])")
    lines.append("    return out")
    matches: Callable[[Features], list[Rule]] = _function("\n".join(lines), "matches", {"_R": rules})
    return matches


def _compile_contributions(evidence: tuple[Evidence, ...], caps: dict[str, float],
                           present: frozenset[str] | None = None) -> Callable[[Features], list[Contribution]]:
    """The evidence terms as one function (``present``: as for :func:`_compile_matches`)."""
    lines = ["def contributions(x):", "    out = []", "    grouped = None"]
    if present is None:  # the specialised function indexes x directly
        lines.insert(1, "    get = x.get")
    for i, e in enumerate(evidence):
        if present is not None and e.feature not in present:
            continue
        w, over = float(e.weight), float(e.over)
        lines.append(f"    v = get({e.feature!r})" if present is None else f"    v = x[{e.feature!r}]")
        test = "v == 0" if e.transform == "zero" else f"v > {over!r}"
        lines.append(f"    if v is not None and {test}:" if present is None else f"    if {test}:")
        if e.transform == "log1p":
            lines.append(f"        a = {w!r} * _log1p(v - {over!r})")
        else:
            lines.append(f"        a = {w!r}")
        lines.append("        if a != 0:")  # negative terms (familiarity) explain too
        if e.group is not None:
            lines.append("            if a > 0:")
            lines.append("                if grouped is None:")
            lines.append("                    grouped = {}")
            lines.append(f"                grouped.setdefault({e.group!r}, []).append(len(out))")
        lines.append(f"            out.append(_C({e.feature!r}, v, a, _W[{i}]))")
    lines += [
        "    if grouped is not None:",  # correlated terms (how big a tree is) say together at most their cap
        "        _cap(out, grouped)",
        "    if len(out) > 1:",
        "        out.sort(key=_by_contribution)",
        "    return out",
    ]

    def cap(out: list[Contribution], grouped: dict[str, list[int]]) -> None:
        for group, idx in grouped.items():
            total = sum(out[i].contribution for i in idx)
            limit = caps[group]
            if total > limit:
                k = limit / total
                for i in idx:
                    c = out[i]
                    out[i] = Contribution(c.feature, c.value, c.contribution * k, c.why)

    env = {"_C": Contribution, "_W": tuple(e.why for e in evidence), "_log1p": math.log1p, "_cap": cap,
           "_by_contribution": _by_contribution}
    contributions: Callable[[Features], list[Contribution]] = _function("\n".join(lines), "contributions", env)
    return contributions


def _function(source: str, name: str, env: dict[str, Any]) -> Any:
    namespace = dict(env)
    exec(compile(source, f"<rules:{name}>", "exec"), namespace)  # the source is built above from validated data
    return namespace[name]


def _rule_evidence(rule: Rule) -> float:
    return rule.evidence


def _by_contribution(c: Contribution) -> float:
    return -c.contribution


def _condition(where: str, feature: str, text: object, known: frozenset[str]) -> tuple[str, str, float]:
    if feature not in known:
        raise RuleError(f"{where}: unknown feature {feature!r}")
    s = str(text).strip()
    for op in sorted(_OPS, key=len, reverse=True):
        if s.startswith(op):
            try:
                number = float(s[len(op) :])
            except ValueError:
                break
            if not math.isfinite(number):
                raise RuleError(f"{where}: condition {s!r} for {feature!r} needs a finite number")
            return feature, op, number
    raise RuleError(f"{where}: condition {s!r} for {feature!r} is not 'OP NUMBER' (OP one of {', '.join(_OPS)})")


def parse_rules(doc: Any, source: str) -> RuleSet:
    known = frozenset(feature_names())  # the registered units' features, this build's and any added
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise RuleError(f"{source}: expected a mapping with version: 1")
    unknown = set(doc) - {"version", "evidence", "rules", "caps"}
    if unknown:
        raise RuleError(f"{source}: unknown keys {sorted(unknown)}")
    caps = doc.get("caps") or {}
    if not isinstance(caps, dict) or not all(isinstance(v, int | float) and v > 0 for v in caps.values()):
        raise RuleError(f"{source}: caps must map group names to positive numbers")
    evidence = []
    for i, e in enumerate(doc.get("evidence") or []):
        where = f"{source}: evidence[{i}]"
        if not isinstance(e, dict) or set(e) - {"feature", "transform", "weight", "over", "why", "group"}:
            raise RuleError(f"{where}: keys are feature, transform, weight, over, why, group")
        if e.get("group") is not None and e["group"] not in caps:
            raise RuleError(f"{where}: group {e['group']!r} has no cap under 'caps'")
        if e.get("feature") not in known:
            raise RuleError(f"{where}: unknown feature {e.get('feature')!r}")
        if e.get("transform", "log1p") not in ("log1p", "present", "zero"):
            raise RuleError(f"{where}: transform must be log1p, present or zero")
        try:
            weight, over = float(e["weight"]), float(e.get("over", 0))
        except (KeyError, TypeError, ValueError):
            raise RuleError(f"{where}: weight (and over, if given) must be numbers") from None
        if not (math.isfinite(weight) and math.isfinite(over)):
            raise RuleError(f"{where}: weight and over must be finite numbers")
        evidence.append(Evidence(e["feature"], e.get("transform", "log1p"), weight, over, str(e.get("why", "")),
                                 e.get("group")))
    rules = []
    for i, r in enumerate(doc.get("rules") or []):
        where = f"{source}: rules[{i}]"
        if not isinstance(r, dict) or set(r) - {"name", "when", "severity", "type", "title", "min_score", "evidence"}:
            raise RuleError(f"{where}: keys are name, when, severity, type, title, min_score, evidence")
        min_score = r.get("min_score")
        if min_score is not None and not (isinstance(min_score, int | float) and 0 <= min_score <= 1):
            raise RuleError(f"{where}: min_score must be a number in [0, 1]")
        rule_evidence = r.get("evidence", 0.0)
        if not (isinstance(rule_evidence, int | float) and 0 <= rule_evidence <= 10):
            raise RuleError(f"{where}: evidence must be a number in [0, 10]")
        if r.get("severity") not in SEVERITIES or r.get("type") not in TYPES:
            raise RuleError(f"{where}: severity must be one of {SEVERITIES} and type one of {TYPES}")
        when = r.get("when") or {}
        if not isinstance(when, dict) or not when:
            raise RuleError(f"{where}: 'when' must map features to conditions")
        conds = tuple(_condition(f"{where}.when", f, c, known) for f, c in when.items())
        rules.append(Rule(str(r["name"]), conds, r["severity"], r["type"], str(r.get("title", r["name"])),
                          None if min_score is None else float(min_score), float(rule_evidence)))
    return RuleSet(tuple(evidence), tuple(rules), source, {str(k): float(v) for k, v in caps.items()})


def load_rules(path: str | Path | None = None) -> RuleSet:
    """The rule file at ``path``, or the default rules shipped with the package (parsed once)."""
    if path is None:
        return _default_rules()
    return _load(path)


@functools.cache
def _default_rules() -> RuleSet:
    return _load(None)


def _load(path: str | Path | None) -> RuleSet:
    if path is None:
        text = resources.files("detectors").joinpath("rules/default.yaml").read_text()
        source = "detectors/rules/default.yaml"
    else:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise RuleError(f"cannot read rule file {path}: {err.strerror}") from None
        source = str(path)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RuleError(f"{source} is not valid YAML: {err}") from None
    return parse_rules(doc, source)


@dataclass(frozen=True, slots=True)
class RuleOverride:
    """A user's change to a named rule: turned off, another severity, another corroborating score."""

    enabled: bool = True
    severity: str | None = None
    min_score: float | None = None


def merge_rules(base: RuleSet, other: RuleSet) -> RuleSet:
    """``base`` with ``other``'s evidence terms, named rules and caps added (a user's rule file beside
    the built-in one). A rule name or cap group both define is refused: which one holds would be a
    guess."""
    names = {r.name for r in base.rules}
    clash = sorted(names.intersection(r.name for r in other.rules))
    if clash:
        raise RuleError(f"{other.source}: rule {clash[0]!r} is already defined in {base.source}")
    groups = sorted(set(base.caps).intersection(other.caps))
    if groups:
        raise RuleError(f"{other.source}: cap group {groups[0]!r} is already defined in {base.source}")
    return RuleSet(base.evidence + other.evidence, base.rules + other.rules, f"{base.source} + {other.source}",
                   {**base.caps, **other.caps})


def configure_rules(rules: RuleSet, overrides: Mapping[str, RuleOverride]) -> RuleSet:
    """``rules`` with the user's per-rule ``overrides`` applied; an unknown rule name is refused with
    the nearest known one."""
    known = {r.name for r in rules.rules}
    # the environment variable form cannot spell a dash: unpaid_pull names unpaid-pull
    overrides = {name if name in known else name.replace("_", "-"): o for name, o in overrides.items()}
    for name, o in overrides.items():
        if name not in known:
            guess = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            raise RuleError(f"unknown rule {name!r} in the detectors configuration{hint}")
        if o.severity is not None and o.severity not in SEVERITIES:
            raise RuleError(f"rule {name!r}: severity must be one of {', '.join(SEVERITIES)}")
        if o.min_score is not None and not 0 <= o.min_score <= 1:
            raise RuleError(f"rule {name!r}: min_score must be in [0, 1]")
    if not overrides:
        return rules
    out = []
    for r in rules.rules:
        change = overrides.get(r.name)
        if change is None:
            out.append(r)
        elif change.enabled:
            out.append(dataclasses.replace(r, severity=change.severity or r.severity,
                                           min_score=r.min_score if change.min_score is None else change.min_score))
    return RuleSet(rules.evidence, tuple(out), rules.source, dict(rules.caps))


class ShapeDetector:
    """The rule file as a detector: the sum of its weighted attack-shape evidence (a raw score in
    evidence units, added by fusion as it is), the terms that fired as the explanation, and the
    named rules that hold. Stateless, so always warm.

    >>> from detectors.base import Batch
    >>> d = ShapeDetector()
    >>> plain, attack = d.score_many(Batch([None, None], [{"frames": 1.0}, {"reentries": 5.0, "eth_to_sender": 10.0}]))
    >>> plain.raw == 0.0 < attack.raw
    True
    """

    name = "shape"
    calibrated = False

    def __init__(self, rules: RuleSet | None = None) -> None:
        self.rules = rules if rules is not None else load_rules()

    @property
    def warm(self) -> bool:
        return True

    def score_many(self, batch: Batch) -> list[Score | None]:
        assess = self.rules.assess
        out: list[Score | None] = []
        for x in batch.features:
            explained, matched = assess(x)
            shape = 0.0
            for c in explained:
                shape += c.contribution
            out.append(Score(shape, explained, matched))
        return out

    def learn_many(self, batch: Batch, rows: Sequence[int]) -> None:
        return None

    def explain(self, x: Features) -> list[Contribution]:
        return self.rules.assess(x)[0]

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        return None

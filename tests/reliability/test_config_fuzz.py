"""Property-based: random and malformed recipes and --set values end in a GankitError or in a
valid resolved config (that survives being saved and read back), never in another exception.

Runs derandomized (the same examples every time, so CI is reproducible); set
GANKIT_FUZZ_EXAMPLES=5000 and GANKIT_FUZZ_RANDOM=1 to search further by hand.
"""

from __future__ import annotations

import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gankit.config import (
    RunConfig,
    apply_overrides,
    from_dict,
    load_recipe,
    parse_override,
    preset_names,
    read_recipe,
    resolve,
)
from gankit.data import DATASETS
from gankit.errors import GankitError
from gankit.models import DISCRIMINATORS, GENERATORS
from gankit.objectives import OBJECTIVES
from gankit.regularizers import REGULARIZERS
from gankit.tricks import TRICKS

FUZZ = settings(
    max_examples=int(os.environ.get("GANKIT_FUZZ_EXAMPLES", 200)),
    deadline=None,
    derandomize=not os.environ.get("GANKIT_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _dotted(value, prefix=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _dotted(v, f"{prefix}{k}.")
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _dotted(v, f"{prefix}{i}.")
    yield prefix.rstrip(".")


REGISTRIES = {
    "data": DATASETS,
    "generator": GENERATORS,
    "discriminator": DISCRIMINATORS,
    "objective": OBJECTIVES,
    "regularizers.0": REGULARIZERS,
    "tricks.0": TRICKS,
}
KEYS = sorted(
    {k for name in preset_names() for k in _dotted(load_recipe(name).to_dict()) if k}
    | {
        f"{section}.{option}"
        for section, reg in REGISTRIES.items()
        for n in reg.names()
        for option in reg.options(n)
    }
    | {f"{section}.name" for section in REGISTRIES}
    | {"regularizers.0", "tricks.0", "regularizers.1.weight", "guard", "optim"}
)
NAMES = sorted({n for reg in REGISTRIES.values() for n in reg.names()})

# YAML text that is malformed, hostile or at the edges of what the parser and the types accept
NASTY = [
    "",
    " ",
    "~",
    "null",
    "[",
    "]",
    "{",
    "{a: 1",
    "'open",
    '"open',
    "- a\n b: c",
    ": :",
    "?",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system",
    "!!binary AAAA",
    "!!set {a, b}",
    "&a [*a]",
    "*undefined",
    "&a {x: *a}",
    ".nan",
    "-.inf",
    ".inf",
    "1e400",
    "-1e400",
    "1e-400",
    "0x10",
    "0o17",
    "0b101",
    "1_000",
    "+1",
    "-0",
    "2001-01-01",
    "2001-01-01T00:00:00Z",
    "9" * 400,
    "9" * 5000,
    "-" + "9" * 400,
    "[" * 600 + "]" * 600,
    "{a: " * 600 + "1" + "}" * 600,
    "\x00",
    "\ufeff",
    "\t",
    "%YAML 1.1\n---\na: 1",
    "--- a\n--- b",
    "? [a, b]\n: c",
    "{[1]: 2}",
    "[1, [2, [3]]]",
    "{name: mlp}",
    "{name: 7}",
    "[{name: r1}]",
    "true",
    "yes",
    "no",
    "on",
    "1.5",
    "-1",
    "0",
    "3",
    "2",
    "[0.5, 0.999]",
    "[0.5]",
    "[1, 2, 3]",
    "[.nan, 0.9]",
    "auto",
    "cpu",
    "cuda:x",
    "cuda:999999",
    "mps",
    "adam",
    "sgd",
    "ring",
    "normal",
    "uniform",
    "é",
    "\U0001f600",
]


def scalars():
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.integers(min_value=-3, max_value=300),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(NAMES),
    )


def values():
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=4
            ),
        ),
        max_leaves=8,
    )


def yaml_value():
    """A --set value as text: dumped from a random value, or raw nasty YAML."""
    dumped = values().map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())
    return st.one_of(dumped, st.sampled_from(NASTY), st.text(max_size=20))


PRESETS = {name: read_recipe(name) for name in [*preset_names(), None]}
# the C parser where there is one: only for re-reading the test's own clean dumps, faster
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_preset(preset, overrides) -> RunConfig:
    """load_recipe(preset, overrides), with the preset's YAML parsed once per test session."""
    return resolve(from_dict(RunConfig, apply_overrides(PRESETS[preset], overrides)))


def check(build) -> None:
    try:
        cfg = build()
    except GankitError:
        return
    assert isinstance(cfg, RunConfig)
    # a valid recipe reads back identically from the config.yaml a run saves (resume needs it)
    text = yaml.dump(cfg.to_dict(), Dumper=DUMPER, sort_keys=False)
    again = resolve(from_dict(RunConfig, yaml.load(text, Loader=LOADER)))
    assert again.to_dict() == cfg.to_dict() or text == yaml.dump(
        again.to_dict(), Dumper=DUMPER, sort_keys=False
    )  # (NaN != NaN: compare the texts then)


@FUZZ
@given(
    preset=st.sampled_from([*preset_names(), None]),
    sets=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=10)),
            yaml_value(),
        ),
        max_size=4,
    ),
)
def test_random_set_values_give_a_gankit_error_or_a_valid_config(preset, sets):
    overrides = [f"{key}={value}" for key, value in sets]
    check(lambda: load_preset(preset, overrides))


@FUZZ
@given(text=st.text(max_size=40))
def test_parse_override_never_crashes(text):
    try:
        key, _ = parse_override(text)
    except GankitError:
        return
    assert isinstance(key, str) and key


def _mutate(text: str, data) -> str:
    how = data.draw(st.sampled_from(["keep", "truncate", "insert", "delete", "nasty"]))
    if not text or how == "keep":
        return text
    i = data.draw(st.integers(0, len(text)))
    if how == "truncate":
        return text[:i]
    if how == "insert":
        return text[:i] + data.draw(st.sampled_from([":", "-", "[", "{", "'", "\t", "\n", " "]))
    if how == "delete":
        j = data.draw(st.integers(i, min(len(text), i + 10)))
        return text[:i] + text[j:]
    return text[:i] + data.draw(st.sampled_from(NASTY)) + text[i:]


@FUZZ
@given(
    base=st.sampled_from(preset_names()),
    edits=st.lists(st.tuples(st.sampled_from(KEYS), values()), max_size=3),
    data=st.data(),
)
def test_random_and_malformed_recipe_files(tmp_path_factory, base, edits, data):
    raw = load_preset(base, []).to_dict()
    for key, value in edits:  # edit the nested mapping directly, as a user's file would
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            if isinstance(node, dict):
                node = node.setdefault(part, {})
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                break
        else:
            if isinstance(node, dict):
                node[parts[-1]] = value
    text = _mutate(yaml.dump(raw, Dumper=DUMPER, sort_keys=False), data)
    path = tmp_path_factory.mktemp("recipe") / "recipe.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check(lambda: load_recipe(path))


@FUZZ
@given(payload=st.binary(max_size=200))
def test_recipe_files_that_are_not_text(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("bin") / "recipe.yaml"
    path.write_bytes(payload)
    check(lambda: load_recipe(path))


def test_every_nasty_value_on_every_section():
    """Deterministic sweep: each nasty YAML text on each section and a few leaves."""
    for key in [
        "seed",
        "data",
        "generator",
        "optim.generator.betas",
        "schedule.steps",
        "regularizers",
        "tricks",
        "logging.every",
        "eval.metrics",
        "guard.lr_factor",
        "device",
        "name",
        "generator.latent_dim",
    ]:
        for value in NASTY:
            check(lambda k=key, v=value: load_preset("ring8", [f"{k}={v}"]))

"""The /train parser and option mapping: pure, no Slack, no HTTP."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import commands
from bot.commands import Cancel, Help, ListJobs, OpenModal, Retry, Status, Train, parse
from bot.options import KEYS, OptionErrors, build_spec


def spec_of(text: str, tenant: str = "T0LAXAI"):
    command = parse(text)
    assert isinstance(command, Train)
    return build_spec(tenant, command.values)


def errors_of(text: str) -> list:
    with pytest.raises(OptionErrors) as caught:
        spec_of(text)
    return caught.value.errors


def test_short_names_map_onto_the_spec():
    spec = spec_of('epochs=10 arch=yolo batch=8 lr=0.01 imgsz=320 dataset=synthetic:64 gpu=cpu '
                   'name=baseline tags=a,b priority=3')
    assert spec.training_params.epochs == 10
    assert spec.training_params.batch_size == 8
    assert spec.training_params.learning_rate == 0.01
    assert spec.model_params.architecture == "yolo11n"  # "yolo" is the smallest current model
    assert spec.model_params.input_size == 320
    assert spec.dataset == "synthetic:64"
    assert spec.gpu_type == "cpu"
    assert spec.custom_name == "baseline"
    assert spec.wandb_tags == ["a", "b"]
    assert spec.priority == 3
    assert spec.tenant_id == "T0LAXAI"


def test_the_seeds_long_names_are_aliases():
    spec = spec_of("epochs=3 batch_size=4 learning_rate=0.002 input_size=64 architecture=yolov8s")
    assert (spec.training_params.batch_size, spec.training_params.learning_rate) == (4, 0.002)
    assert (spec.model_params.input_size, spec.model_params.architecture) == (64, "yolov8s")


def test_unset_options_keep_the_spec_defaults():
    spec = spec_of("epochs=2")
    assert spec.training_params.batch_size == 16 and spec.model_params.architecture == "yolo11n"
    assert spec.dataset == "synthetic" and spec.gpu_type is None and spec.custom_name is None


@pytest.mark.parametrize("text", [
    'name="my first run" epochs=2',
    "name='my first run' epochs=2",
    "name=\u201cmy first run\u201d epochs=2",  # Slack's smart double quotes
    "name=\u2018my first run\u2019 epochs=2",  # and single ones
    '"name=my first run" epochs=2',
])
def test_quoted_values_keep_their_spaces(text):
    assert spec_of(text).custom_name == "my first run"


def test_apostrophes_inside_words_are_not_quotes():
    assert spec_of("name=Bob's epochs=2").custom_name == "Bob's"
    assert spec_of("name=Bob\u2019s epochs=2").custom_name == "Bob's"


def test_slack_escaping_and_link_wrapping_are_undone():
    assert spec_of("name=a&amp;b").custom_name == "a&b"
    assert spec_of("dataset=<gs://bucket/data.yaml>", "T1").dataset == "gs://bucket/data.yaml"


def test_spaces_around_the_equals_sign_are_forgiven():
    spec = spec_of("epochs = 5 batch =4 lr= 0.01")
    assert (spec.training_params.epochs, spec.training_params.batch_size, spec.training_params.learning_rate) == (
        5, 4, 0.01)


def test_unknown_key_suggests_the_right_one():
    (error,) = errors_of("epoch=3")
    assert error.field == "epoch"
    assert "did you mean `epochs`" in error.message
    assert all(key in error.message for key in KEYS)  # and lists what is allowed


def test_did_you_mean_points_at_short_names_even_for_alias_typos():
    (error,) = errors_of("learning_rte=0.1")
    assert "did you mean `lr`" in error.message


@pytest.mark.parametrize("text, field, words", [
    ("epochs=abc", "epochs", ["whole number", "abc", "1 to 1000"]),
    ("epochs=0", "epochs", ["greater than or equal to 1", "1 to 1000"]),
    ("epochs=1001", "epochs", ["less than or equal to 1000"]),
    ("batch_size=1.5", "batch_size", ["whole number", "1 to 1024"]),
    ("lr=fast", "lr", ["finite number", "above 0"]),
    ("lr=nan", "lr", ["finite number"]),
    ("learning_rate=2", "learning_rate", ["less than or equal to 1"]),
    ("imgsz=100", "imgsz", ["multiple of 32"]),
    ("arch=resnet", "arch", ["unknown architecture", "yolov8n", "yolo11n"]),
    ("gpu=v100", "gpu", ["nvidia-l4", "cpu"]),
    ("dataset=synthetic:3", "dataset", ["between 8 and 10000"]),
    ("priority=10", "priority", ["0 (default) to 9"]),
    ("name=" + "x" * 101, "name", ["at most 100 characters"]),
    ("tags=" + ",".join(f"t{i}" for i in range(21)), "tags", ["at most 20"]),
])
def test_each_error_names_the_field_as_typed_and_what_is_allowed(text, field, words):
    errors = errors_of(text)
    assert [e.field for e in errors] == [field]
    for word in words:
        assert word in errors[0].message, errors[0].message


def test_all_errors_are_reported_at_once():
    errors = errors_of("epochs=abc arch=resnet epoch=3 lr=-1")
    assert {e.field for e in errors} == {"epoch"}  # parsing errors first: nothing is validated past them
    errors = errors_of("epochs=abc arch=resnet lr=-1")
    assert {e.field for e in errors} == {"epochs", "arch", "lr"}


@pytest.mark.parametrize("text, field, word", [
    ("epochs=2 epochs=3", "epochs", "more than once"),
    ("batch=2 batch_size=3", "batch_size", "more than once"),
    ("epochs=", "epochs", "needs a value"),
    ("epochs", "epochs", "epochs=VALUE"),
    ('name="unclosed', "name", "unclosed"),
    ("stauts", "stauts", "did you mean `/train status`"),
])
def test_parse_errors_name_the_field(text, field, word):
    with pytest.raises(OptionErrors) as caught:
        parse(text)
    assert caught.value.errors[0].field == field
    assert word in caught.value.errors[0].message


def test_subcommands():
    assert parse("") == OpenModal()
    assert parse("   ") == OpenModal()
    assert parse("help") == Help()
    assert parse("HELP") == Help()
    assert parse("list") == ListJobs()
    assert parse("status") == Status(None)
    assert parse("status 1a2b3c4d") == Status("1a2b3c4d")
    assert parse("status `1A2B3C4D`") == Status("1a2b3c4d")  # copied from the card, with its backticks
    assert parse("cancel 1a2b3c4d-0000-4000-8000-000000000000") == Cancel("1a2b3c4d-0000-4000-8000-000000000000")
    assert parse("retry 1a2b3c4d") == Retry("1a2b3c4d")


@pytest.mark.parametrize("text, word", [
    ("cancel", "exactly one job id"),
    ("retry a b", "exactly one job id"),
    ("status a b", "at most one"),
    ("status zzz!", "not a job id"),
    ("list 3", "no arguments"),
    ("cancel epochs=3", "no key=value"),
])
def test_bad_subcommands_say_how_to_use_them(text, word):
    with pytest.raises(OptionErrors) as caught:
        parse(text)
    assert word in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*'ab=," \u201c\u201d\u2018\u2019\'xyz019.-_', *KEYS, "status", "cancel "]),
                max_size=30).map("".join))
def test_any_text_parses_or_fails_with_named_errors(text):
    """The parser never crashes: it returns a command, or errors that each name a field."""
    try:
        command = parse(text)
    except OptionErrors as exc:
        assert exc.errors and all(e.field and e.message for e in exc.errors)
        return
    if isinstance(command, Train):
        try:
            build_spec("T0LAXAI", command.values)
        except OptionErrors as exc:
            assert all(e.field and e.message for e in exc.errors)


def test_normalize_leaves_mentions_alone():
    assert commands.normalize("name=<@U123>") == "name=<@U123>"

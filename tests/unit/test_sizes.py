"""One reading of byte sizes for every field: the documented table, the refusals and their hints,
the same bytes in a memory fault, `startup.memory_limit` and a container stack, and the JSON Schema."""

import re
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from harness.containers.faults import UpdateParams
from harness.containers.spec import ContainerSpec
from harness.memory.limit_fault import LimitParams
from harness.memory.startup_spec import StartupSpec
from harness.memory.stress_fault import StressParams
from harness.sizes import MAX_SIZE, SIZE_JSON_SCHEMA, SIZE_PATTERN, Size, exact_size, format_size, parse_size

KI, MI, GI, TI = 1 << 10, 1 << 20, 1 << 30, 1 << 40


@pytest.mark.parametrize(("text", "expected"), [
    # bytes
    (0, 0), (4096, 4096), ("4096", 4096), ("4096B", 4096), (" 4096 ", 4096), (4096.0, 4096), (1e9, 10**9),
    # decimal (SI)
    ("2k", 2000), ("2K", 2000), ("2kB", 2000), ("2KB", 2000),
    ("300M", 300 * 10**6), ("300MB", 300 * 10**6), ("2G", 2 * 10**9), ("2GB", 2 * 10**9),
    ("1T", 10**12), ("1TB", 10**12),
    # binary (IEC), and the `iB` forms in any case
    ("2Ki", 2 * KI), ("2KiB", 2 * KI), ("512Mi", 512 * MI), ("512MiB", 512 * MI),
    ("2Gi", 2 * GI), ("2GiB", 2 * GI), ("1Ti", TI), ("1TiB", TI),
    ("2kib", 2 * KI), ("512mib", 512 * MI), ("2gib", 2 * GI), ("1tib", TI), ("2 GIB", 2 * GI),
    ("300 MB", 300 * 10**6), ("512 Mi", 512 * MI),
    # fractions, rounded half up to whole bytes
    ("1.5Gi", 3 << 29), ("0.5k", 500), ("1.5", 2), ("0.5", 1), ("0.4", 0), ("1.0005k", 1001),
    ("0.1G", 10**8),  # exact: no float error on the way
    # the maximum
    ("16Ti", MAX_SIZE), (MAX_SIZE, MAX_SIZE),
])
def test_documented_meanings(text: Any, expected: int) -> None:
    assert parse_size(text) == expected


def test_the_maximum_is_16_tib() -> None:
    assert MAX_SIZE == 16 * TI


@pytest.mark.parametrize(("text", "hint"), [
    ("512m", "`512m` is ambiguous (Docker reads 512 MiB, pydantic 512 MB, Kubernetes 512 thousandths of a "
             "byte): write 512Mi or 512M"),
    ("2g", "`2g` is ambiguous (Docker reads 2 GiB, pydantic 2 GB): write 2Gi or 2G"),
    ("1t", "`1t` is ambiguous (Docker reads 1 TiB, pydantic 1 TB): write 1Ti or 1T"),
    ("512mb", "`512mb` is ambiguous (Docker reads 512 MiB, pydantic 512 MB): write 512Mi or 512M"),
    ("2gb", "`2gb` is ambiguous (Docker reads 2 GiB, pydantic 2 GB): write 2Gi or 2G"),
    ("1tb", "`1tb` is ambiguous (Docker reads 1 TiB, pydantic 1 TB): write 1Ti or 1T"),
    ("4kb", "`4kb` is ambiguous (Docker reads 4 KiB, pydantic 4 kB): write 4Ki or 4k"),
    ("1.5g", "`1.5g` is ambiguous (Docker reads 1.5 GiB, pydantic 1.5 GB): write 1.5Gi or 1.5G"),
    ("2Gb", "`2Gb` is ambiguous (Docker reads 2 GiB, pydantic 2 GB): write 2Gi or 2G"),
    ("2 g", "`2g` is ambiguous"),
])
def test_docker_spellings_are_refused_with_both_readings(text: str, hint: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(text)
    assert str(caught.value).startswith(hint) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("value", "says"), [
    (-5, "size -5 is negative"), ("-5Mi", "size '-5Mi' is negative"), (-0.5, "is negative"),
    (True, "size True is not a size"), (False, "size False is not a size"),
    (float("nan"), "size nan is not a number of bytes"), (float("inf"), "size inf is not a number of bytes"),
    (float("-inf"), "size -inf is not a number of bytes"),
    ("nan", "bad size 'nan'"), ("inf", "bad size 'inf'"),
    ("", "bad size ''"), ("  ", "bad size '  '"), ("MiB", "bad size 'MiB'"),
    ("lots", "bad size 'lots'"), ("1e9", "bad size '1e9'"), ("1,5Gi", "bad size"),
    ("12 parsecs", "bad size '12 parsecs' ('parsecs' is not a unit)"),
    ("512b", "bad size '512b' ('b' is not a unit)"), ("2ki", "('ki' is not a unit)"),
    (None, "size None is not a size"), ([1], "size [1] is not a size"),
    (MAX_SIZE + 1, "above the largest accepted, 16Ti"), ("17Ti", "size '17Ti' is above the largest accepted"),
    ("16.1Ti", "above the largest"), ("20T", "above the largest"),
])
def test_refusals_say_what_was_given_and_what_to_write(value: Any, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(value)
    message = str(caught.value)
    assert says in message and "\n" not in message
    assert "above the largest" in message or "512Mi" in message  # the forms to write instead


def test_format_size_for_people() -> None:
    assert [format_size(n) for n in (None, 512, 12 * KI, 300 * MI, 3 << 29, 20 * GI, -2 * MI)] == \
        ["-", "512 B", "12 KiB", "300 MiB", "1.50 GiB", "20 GiB", "-2.00 MiB"]


@pytest.mark.parametrize(("size", "text"), [
    (2 * GI, "2Gi"), (60 * MI, "60Mi"), (3 * TI, "3Ti"), (300 * 10**6, "300M"), (2 * 10**9, "2G"),
    (2000, "2k"), (4097, "4097"), (0, "0"),
])
def test_exact_size_reads_back_the_same(size: int, text: str) -> None:
    assert exact_size(size) == text and parse_size(text) == size


@pytest.mark.parametrize("text", ["1Gi", "1G", "1.5Gi", "300M", "512MiB", "2GB", "0.5Gi", GI, "1073741824"])
def test_one_text_means_the_same_bytes_in_every_field(text: Any) -> None:
    expected = parse_size(text)
    stress = StressParams.model_validate({"amount": text})
    limit = LimitParams.model_validate({"limit": text})
    startup = StartupSpec.model_validate({"memory_limit": text})
    stack = ContainerSpec.model_validate({"kind": "container", "inner": {"kind": "triton"}, "memory": text})
    update = UpdateParams.model_validate({"memory": text})
    assert stress.amount == limit.limit == startup.memory_limit == update.memory == expected
    assert stack.memory == expected


def test_container_shm_size_default_keeps_its_meaning() -> None:
    stack = ContainerSpec.model_validate({"kind": "container", "inner": {"kind": "triton"}})
    assert stack.shm_size == 256 * MI and stack.memory is None  # was Docker's `256m`
    limited = ContainerSpec.model_validate({"kind": "container", "inner": {"kind": "triton"},
                                            "memory": "2Gi"})
    # What a dump holds (bytes) reads back as the same bytes.
    dumped = limited.model_dump(include={"kind", "memory", "shm_size"})
    again = ContainerSpec.model_validate({**dumped, "inner": {"kind": "triton"}})
    assert (again.memory, again.shm_size) == (limited.memory, limited.shm_size)
    assert limited.memory == 2 * GI


def test_docker_sdk_reads_the_container_form_as_the_same_bytes() -> None:
    parse_bytes = pytest.importorskip("docker.utils.utils").parse_bytes
    for text in ("2Gi", "1.5Gi", "2G", "16Ti", "6Mi"):
        stack = ContainerSpec.model_validate({"kind": "container", "inner": {"kind": "triton"},
                                              "memory": text})
        assert parse_bytes(stack.memory) == parse_size(text)


class _Model(BaseModel):
    size: Size


def test_json_schema_says_integer_bytes_or_a_sized_string() -> None:
    schema = TypeAdapter(Size).json_schema()
    assert schema == SIZE_JSON_SCHEMA
    integer, string = schema["anyOf"]
    assert integer == {"type": "integer", "minimum": 0, "maximum": MAX_SIZE}
    assert string["type"] == "string" and string["pattern"] == SIZE_PATTERN
    assert "512Mi" in schema["description"] and "2G" in schema["description"]
    # What a model dumps is the integer, and its serialization schema says so.
    assert TypeAdapter(Size).json_schema(mode="serialization") == {"type": "integer"}
    assert _Model.model_validate({"size": "1Ki"}).model_dump() == {"size": 1024}
    assert _Model.model_json_schema()["properties"]["size"]["anyOf"] == schema["anyOf"]


@pytest.mark.parametrize("text", [
    "4096", "4096B", "2k", "2K", "2kB", "2KB", "300M", "300MB", "2G", "2GB", "1T", "1TB", "2Ki", "2KiB",
    "512Mi", "512MiB", "2Gi", "2GiB", "1Ti", "1TiB", "2kib", "512mib", "2gib", "1tib", "2 GIB", "1.5Gi",
    " 300 MB ",
    # refused ones
    "512m", "2g", "1t", "512mb", "2gb", "4kb", "2Gb", "512b", "2ki", "1e9", "lots", "", "-5Mi", "MiB",
    "1.5.Gi",
])
def test_schema_pattern_accepts_exactly_what_the_parser_reads(text: str) -> None:
    try:
        parse_size(text)
        reads = True
    except ValueError:
        reads = False
    assert (re.search(SIZE_PATTERN, text) is not None) == reads

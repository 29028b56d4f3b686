"""The core never imports a feature: checked on the import graph, read from the source with `ast`.

Every `import x` and `from x import y` counts, inside functions and `if TYPE_CHECKING:` too. The
edges the core still has are listed in KNOWN_DEBT, each with its reason; the test fails when a
new one appears and when a listed one is gone, so the list stays true.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("harness", "reports", "faults", "locustfiles")

CORE = {
    *(f"harness.{name}" for name in (
        "features", "analysis", "metrics", "sloci", "slo", "verdict", "journal", "journal_compat",
        "timeline", "restore", "supervisor", "canary", "exitwatch", "replicas", "roles", "faultrun",
        "faultimpact", "runner", "cli", "scenario", "specbase", "durations", "errors", "exitcodes", "procs",
        "plugins", "stats", "yamlsrc", "rundir", "listing", "logpatterns", "progress", "users", "repeatspec",
        "repeat", "series_run", "loopback", "sizes", "limits", "suggest", "thresholds", "console", "clihelp",
        "clienv", "clijson", "scenario_schema", "abort",
        "soak", "soak.cli", "soak.cycle", "soak.faults", "soak.index", "soak.plan", "soak.report",
        "soak.run", "soak.trend",
        # The observers every run has; what a stack's /metrics holds is its scrape profile.
        "observers", "observers.base", "observers.logwatch", "observers.prometheus",
        "observers.scrape_profile",
    )),
    *(f"reports.{name}" for name in ("build", "summary", "html", "junit", "story", "style", "charts",
                                     "live")),
    # The interfaces plugins implement, and their registries: they name no stack or fault.
    "harness.stacks.base", "harness.stacks.registry", "harness.stacks.ports", "faults.base",
    "locustfiles.base",
}
# A module is a feature's when its name is one of these or lies below one.
FEATURES = (
    "harness.triton", "harness.torchserve", "harness.dynamo", "harness.llm", "harness.containers",
    "harness.memory", "harness.tracing", "harness.gpu", "harness.process_faults", "harness.vllm",
    "harness.store", "harness.exporter", "harness.matrix",
    # The kinds still in the shared folders: the external URL stack, the generic user bases.
    "harness.stacks", "faults", "locustfiles",
)

KNOWN_DEBT = {
    ("harness.runner", "harness.memory.runpart"): "start attempts, sidecars and memory groups are not yet "
                                                  "the memory feature's hooks (the restart path calls them)",
    ("harness.scenario", "harness.memory.startup_spec"): "the scenario model's `startup:` section",
    ("harness.scenario", "harness.llm.openai_settings"): "the scenario model's `load.openai` section",
    ("harness.listing", "harness.triton.modelzoo"): "`harness list models` prints Triton's model zoo",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def imported_by(name: str) -> set[str]:
    """The repository's modules `name` imports: `from a import b` counts as `a.b` where that is a module."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package, one level up per extra dot
                base = package[: len(package) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in MODULES else source)
    return {module for module in found if module in MODULES}


def is_feature(module: str) -> bool:
    """Below a feature's folder and not one of the interfaces the core owns (`harness.stacks.base`)."""
    return module not in CORE and any(module == f or module.startswith(f + ".") for f in FEATURES)


def core_to_feature_edges() -> set[tuple[str, str]]:
    return {(core, target) for core in CORE for target in imported_by(core) if is_feature(target)}


def test_the_lists_name_real_modules() -> None:
    assert not CORE - set(MODULES), "CORE names modules that do not exist"
    missing = [f for f in FEATURES if not any(m == f or m.startswith(f + ".") for m in MODULES)]
    assert not missing, f"FEATURES names modules that do not exist: {missing}"


def test_the_core_imports_no_feature_but_the_known_debt() -> None:
    edges = core_to_feature_edges()
    new = sorted(edges - set(KNOWN_DEBT))
    gone = sorted(set(KNOWN_DEBT) - edges)
    assert not new, f"core modules import features (go through harness.features instead): {new}"
    assert not gone, f"KNOWN_DEBT lists edges that no longer exist; remove them: {gone}"


def test_the_graph_reader_resolves_each_form_of_import() -> None:
    edges = imported_by("harness.metrics")  # from harness.x import y, at the top
    assert {"harness.analysis", "harness.features", "harness.faultimpact"} <= edges
    assert "harness.soak.cli" in imported_by("harness.cli")  # from harness.soak import cli as soak_cli
    assert "harness.stacks.base" in imported_by("harness.features")  # inside `if TYPE_CHECKING:`
    assert "faults.base" in imported_by("harness.scenario")  # inside a validator


def _loads_gevent(code: str) -> bool:
    probe = code + "\nimport sys\nprint(any(m == 'gevent' or m.startswith('gevent.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


def test_the_scenario_model_loads_no_gevent() -> None:
    assert not _loads_gevent("import harness.scenario")
    # Validating SLOs discovers every feature: their modules must stay light too.
    assert not _loads_gevent("from pathlib import Path\nfrom harness.scenario import load_scenario\n"
                             "load_scenario(Path('scenarios/quickstart.yaml'))")

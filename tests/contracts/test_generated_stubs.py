"""The committed stubs in libs/api are exactly what proto/ generates, and expose the v1 services."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_API = REPO_ROOT / "libs" / "api" / "src" / "novamind" / "api"

#: service full name -> RPCs it must offer, and the module whose descriptor declares it.
REQUIRED_RPCS: dict[str, tuple[str, set[str]]] = {
    "novamind.api.actigraphy.v1.ActigraphyService": (
        "novamind.api.actigraphy.v1.actigraphy_pb2",
        {"Analyze", "Embed", "GetModelInfo"},
    ),
    "novamind.api.forecasting.v1.ForecastingService": (
        "novamind.api.forecasting.v1.forecasting_pb2",
        {"Forecast", "Backtest"},
    ),
    "novamind.api.correlation.v1.CorrelationService": (
        "novamind.api.correlation.v1.correlation_pb2",
        {"AnalyzeCorrelations"},
    ),
    "novamind.api.pharmacogenomics.v1.PharmacogenomicsService": (
        "novamind.api.pharmacogenomics.v1.pharmacogenomics_pb2",
        {"InterpretGenotype", "RecommendMedications"},
    ),
    "novamind.api.twin.v1.TwinService": (
        "novamind.api.twin.v1.twin_pb2",
        {
            "GetTwin",
            "GetInsights",
            "ListPatients",
            "SubmitSymptomReport",
            "RecordGenotype",
            "SetMedications",
            "RequestActigraphyAnalysis",
            "GetIngestionStats",
        },
    ),
}


def _protogen() -> ModuleType:
    """The generator module, imported from the checkout whether or not devtools is installed."""
    try:
        return importlib.import_module("novamind.devtools.protogen")
    except ImportError:
        path = REPO_ROOT / "libs" / "devtools" / "src" / "novamind" / "devtools" / "protogen.py"
        spec = importlib.util.spec_from_file_location("novamind_protogen_under_test", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def _tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out_dir = tmp_path_factory.mktemp("api-src")
    written = _protogen().generate(out_dir, REPO_ROOT)
    assert written, "generate() wrote nothing"
    assert not (out_dir / "novamind" / "__init__.py").exists(), "novamind must stay a PEP 420 namespace"
    return _tree(out_dir / "novamind" / "api")


def test_committed_stubs_have_exactly_the_generated_files(regenerated: dict[str, bytes]) -> None:
    committed = _tree(COMMITTED_API)

    missing = sorted(set(regenerated) - set(committed))
    extra = sorted(set(committed) - set(regenerated))

    assert not missing, f"generated but not committed (run `make proto`): {missing}"
    assert not extra, f"committed but not generated (stale or hand-written): {extra}"


def test_committed_stubs_are_byte_identical_to_regenerated(regenerated: dict[str, bytes]) -> None:
    committed = _tree(COMMITTED_API)

    differing = sorted(
        name for name in regenerated.keys() & committed.keys() if regenerated[name] != committed[name]
    )

    assert not differing, f"stale or hand-edited (run `make proto`): {differing}"


def test_generation_is_deterministic(tmp_path: Path, regenerated: dict[str, bytes]) -> None:
    _protogen().generate(tmp_path, REPO_ROOT)

    assert _tree(tmp_path / "novamind" / "api") == regenerated


@pytest.mark.parametrize("service_name", sorted(REQUIRED_RPCS))
def test_service_offers_the_contracted_rpcs(service_name: str) -> None:
    module_name, rpcs = REQUIRED_RPCS[service_name]
    module = importlib.import_module(module_name)

    service = module.DESCRIPTOR.pool.FindServiceByName(service_name)

    assert rpcs <= set(service.methods_by_name), (
        f"{service_name} lacks {sorted(rpcs - set(service.methods_by_name))}"
    )


def test_every_event_message_starts_with_the_event_envelope() -> None:
    events = importlib.import_module("novamind.api.events.v1.events_pb2")
    event_names = [
        "SymptomReported",
        "ActigraphyAnalysisRequested",
        "ActigraphyAnalysisCompleted",
        "TwinUpdated",
        "DeadLetter",
        "DeviceReading",
    ]

    for name in event_names:
        fields = events.DESCRIPTOR.message_types_by_name[name].fields_by_number
        assert fields[1].name == "event_id", name
        assert fields[2].message_type.full_name == "google.protobuf.Timestamp", name
        assert fields[2].name == "occurred_at", name
        assert fields[3].message_type.full_name == "novamind.api.common.v1.PatientRef", name
        assert fields[3].name == "patient", name


def test_published_events_name_their_topic() -> None:
    events = importlib.import_module("novamind.api.events.v1.events_pb2")
    expected = {
        "SymptomReported": "symptom.reports.v1",
        "ActigraphyAnalysisRequested": "actigraphy.analysis.requested.v1",
        "ActigraphyAnalysisCompleted": "actigraphy.analysis.completed.v1",
        "TwinUpdated": "twin.updated.v1",
        "DeviceReading": "device.readings.v1",
    }

    for name, topic in expected.items():
        options = events.DESCRIPTOR.message_types_by_name[name].GetOptions()
        assert options.Extensions[events.topic] == topic

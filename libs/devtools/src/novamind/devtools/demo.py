"""Demo patients for the local fleet, so every dashboard field has something to show.

Six made-up patients. The wearable data of four comes from real recordings (the CamNtech
Actiwatch tutorial recordings and a Philips Actiware export in ``../shared/data/actigraphy``); two
come from the synthetic generator, one of them with a second week of visibly worse sleep. Their
minute-level activity counts are moved in time so that the last recorded day ends at today's
midnight (UTC), then sent the way device sync sends them: one Open mHealth ``activity-count`` data
point per minute on ``device.readings.v1``, with daily step counts and resting heart rates. Symptom
reports (weekly PHQ-9, fortnightly GAD-7, daily mood over twelve weeks) follow a trajectory per
patient and go to ``symptom.reports.v1``; medications and genotypes are set through the twin's
gRPC API. The twin then requests PAT analyses as days complete, exactly as for a real patient.

Every event id is derived from the patient and the moment (UUID v5), so loading twice sends
duplicates the twin drops, never new data.

Patients are named by made-up identifiers (``demo-...``); like any identifier they are
pseudonymised with the configured key before they leave this module.
"""

from __future__ import annotations

import asyncio
import math
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaProducer
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from novamind.api.common.v1 import common_pb2
from novamind.api.events.v1 import events_pb2
from novamind.api.pharmacogenomics.v1 import pharmacogenomics_pb2
from novamind.api.twin.v1 import twin_pb2, twin_pb2_grpc
from novamind.core.kafka import DEVICE_READINGS, SYMPTOM_REPORTS
from novamind.core.privacy import pseudonymise
from novamind.devtools.readings import activity_count_point, heart_rate_point, step_count_point

#: Namespace of the demo's deterministic event ids.
DEMO_NAMESPACE = uuid.UUID("6f1c7a52-9a0e-4d3b-8f55-3c1b2a7d9e01")
#: Weeks of symptom history each demo patient has.
SYMPTOM_WEEKS = 12
MINUTES_PER_DAY = 1440

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DemoPatient:
    """One demo patient: where the wearable data comes from and how the symptoms go."""

    identifier: str
    description: str
    #: Counts per minute from local midnight of the first day (NaN = missing), whole days.
    counts: FloatArray
    #: PHQ-9 total at the start and at the end of the symptom history.
    phq9: tuple[float, float]
    #: GAD-7 total at the start and at the end.
    gad7: tuple[float, float]
    #: PHQ-9 item 9 (thoughts of self-harm) in the latest report, 0-3.
    latest_item9: int = 0
    medications: tuple[tuple[str, str, float], ...] = ()  # (name, RxNorm code, daily mg)
    genotype: tuple[tuple[str, str], ...] = ()  # (gene, diplotype)
    extra: dict[str, Any] = field(default_factory=dict)

    def pseudonym(self, key: bytes | str) -> str:
        return pseudonymise(self.identifier, key)

    @property
    def days(self) -> int:
        return self.counts.size // MINUTES_PER_DAY


def _whole_days(counts: FloatArray, first_minute_of_day: int, days: int) -> FloatArray:
    """The last ``days`` whole local days of a minute series starting at ``first_minute_of_day``."""
    skip = (MINUTES_PER_DAY - first_minute_of_day) % MINUTES_PER_DAY
    whole = counts[skip:]
    whole = whole[: (whole.size // MINUTES_PER_DAY) * MINUTES_PER_DAY]
    return np.asarray(whole[-days * MINUTES_PER_DAY :], dtype=np.float64)


def _recording_counts(path: Path, days: int) -> FloatArray:
    from novamind.pat.domain.preprocessing import to_minutes
    from novamind.pat.readers import read_recording

    minutes = to_minutes(read_recording(path))
    return _whole_days(minutes.counts, int(minutes.local_minute_of_day[0]), days)


def _synthetic_counts(days: int, *, seed: int, efficiency: Sequence[float], bedtime: str) -> FloatArray:
    """Generated weeks, one generator run per entry of ``efficiency`` (planted sleep efficiency)."""
    from novamind.pat.domain.preprocessing import to_minutes
    from novamind.pat.domain.synthetic import SleepPattern, SyntheticConfig, generate

    weeks = []
    for i, eff in enumerate(efficiency):
        config = SyntheticConfig(
            days=7,
            epoch_seconds=60,
            timezone="UTC",
            sleep=SleepPattern(bedtime=bedtime, efficiency=eff, awakenings=2 if eff > 0.8 else 6),
        )
        minutes = to_minutes(generate(config, seed=seed + i).recording)
        weeks.append(minutes.counts[: 7 * MINUTES_PER_DAY])
    return np.asarray(np.concatenate(weeks)[-days * MINUTES_PER_DAY :], dtype=np.float64)


def demo_patients(shared_actigraphy: Path | None, *, days: int = 14) -> list[DemoPatient]:
    """The demo patients; those from real recordings only when ``shared_actigraphy`` has them."""
    patients: list[DemoPatient] = []
    real = [
        (
            "demo-awd-01",
            "example_01.AWD",
            "Actiwatch-4 recording; depression worsening over 12 weeks",
            (9.0, 17.0),
            (7.0, 12.0),
            1,
            (("sertraline", "36437", 100.0),),
            (("CYP2C19", "*2/*2"), ("CYP2D6", "*1/*1")),
        ),
        (
            "demo-awd-02",
            "example_02.AWD",
            "Actiwatch-4 recording; mild, stable",
            (7.0, 6.0),
            (5.0, 5.0),
            0,
            (("escitalopram", "321988", 10.0),),
            (("CYP2C19", "*1/*17"), ("CYP2D6", "*1/*2")),
        ),
        (
            "demo-awd-03",
            "example_03.AWD",
            "Actiwatch-4 recording; improving on treatment",
            (19.0, 10.0),
            (14.0, 8.0),
            0,
            (("fluoxetine", "4493", 20.0), ("aripiprazole", "89013", 5.0)),
            (("CYP2D6", "*4/*4"), ("CYP2C19", "*1/*1")),
        ),
        (
            "demo-rpx-01",
            "test_sample_rpx_eng.csv",
            "Philips Actiware export; anxiety foremost",
            (8.0, 9.0),
            (15.0, 16.0),
            0,
            (),
            (),
        ),
    ]
    if shared_actigraphy is not None and shared_actigraphy.is_dir():
        for identifier, filename, description, phq9, gad7, item9, meds, genotype in real:
            path = shared_actigraphy / filename
            if not path.is_file():
                continue
            counts = _recording_counts(path, days)
            if counts.size < 3 * MINUTES_PER_DAY:
                continue
            patients.append(
                DemoPatient(
                    identifier, description, counts, phq9, gad7, item9, meds, genotype, {"source": filename}
                )
            )
    patients.append(
        DemoPatient(
            "demo-synth-01",
            "generated: regular sleeper, in remission",
            _synthetic_counts(days, seed=11, efficiency=(0.9, 0.9), bedtime="22:45"),
            (5.0, 3.0),
            (4.0, 3.0),
            medications=(("venlafaxine", "39786", 150.0),),
            genotype=(("CYP2D6", "*1/*41"),),
            extra={"source": "synthetic"},
        )
    )
    patients.append(
        DemoPatient(
            "demo-synth-02",
            "generated: sleep efficiency falls in the second week, mood follows",
            _synthetic_counts(days, seed=23, efficiency=(0.9, 0.72), bedtime="23:30"),
            (10.0, 16.0),
            (9.0, 13.0),
            medications=(("citalopram", "2556", 20.0),),
            genotype=(("CYP2C19", "*1/*2"),),
            extra={"source": "synthetic"},
        )
    )
    return patients


def _event_id(*parts: object) -> str:
    return str(uuid.uuid5(DEMO_NAMESPACE, "/".join(str(p) for p in parts)))


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _items(total: int, rng: np.random.Generator, n_items: int, fixed_last: int | None = None) -> list[int]:
    """Item responses 0-3 summing to ``total`` (clipped to what ``n_items`` items can hold)."""
    items = [0] * n_items
    free = list(range(n_items - 1)) if fixed_last is not None else list(range(n_items))
    if fixed_last is not None:
        items[-1] = fixed_last
        total -= fixed_last
    total = max(0, min(total, 3 * len(free)))
    for _ in range(total):
        candidates = [i for i in free if items[i] < 3]
        items[int(rng.choice(candidates))] += 1
    return items


@dataclass(frozen=True)
class DemoRecords:
    """Everything the loader sends for one patient."""

    readings: list[tuple[bytes, bytes]]
    reports: list[tuple[bytes, bytes]]


def demo_records(patient: DemoPatient, pseudonym: str, *, today: date, seed: int = 0) -> DemoRecords:
    """The Kafka records (key, value) of one patient, ending at ``today``'s midnight UTC."""
    rng = np.random.default_rng(zlib.crc32(patient.identifier.encode()) + seed)
    key = pseudonym.encode()
    end = datetime.combine(today, time(0), tzinfo=UTC)
    start = end - timedelta(days=patient.days)
    readings: list[tuple[bytes, bytes]] = []
    counts = patient.counts
    for minute in np.flatnonzero(~np.isnan(counts)):
        moment = start + timedelta(minutes=int(minute))
        readings.append(
            (
                key,
                activity_count_point(
                    _event_id(pseudonym, "ac", moment), pseudonym, moment, float(counts[minute])
                ),
            )
        )
    history_days = SYMPTOM_WEEKS * 7
    daily_steps: dict[date, float] = {}
    for day_index in range(history_days):
        day = today - timedelta(days=history_days - day_index)
        recorded = day_index - (history_days - patient.days)
        if recorded >= 0:
            day_counts = counts[recorded * MINUTES_PER_DAY : (recorded + 1) * MINUTES_PER_DAY]
            activity = float(np.nansum(day_counts))
            steps = max(500.0, activity / 40.0)
        else:
            steps = max(500.0, rng.normal(6500.0, 1800.0))
        daily_steps[day] = steps
        day_start = datetime.combine(day, time(0), tzinfo=UTC)
        readings.append(
            (
                key,
                step_count_point(
                    _event_id(pseudonym, "steps", day), pseudonym, day_start, int(steps), seconds=86400
                ),
            )
        )
        resting = 62.0 + 0.25 * (
            patient.phq9[0] + (patient.phq9[1] - patient.phq9[0]) * day_index / history_days
        )
        readings.append(
            (
                key,
                heart_rate_point(
                    _event_id(pseudonym, "hr", day),
                    pseudonym,
                    day_start + timedelta(hours=7),
                    round(resting + rng.normal(0, 1.5), 1),
                    at_rest=True,
                ),
            )
        )
    reports: list[bytes] = []
    steps_mean = float(np.mean(list(daily_steps.values())))
    for day_index in range(history_days):
        day = today - timedelta(days=history_days - day_index)
        fraction = day_index / max(1, history_days - 1)
        phq9 = patient.phq9[0] + (patient.phq9[1] - patient.phq9[0]) * fraction
        gad7 = patient.gad7[0] + (patient.gad7[1] - patient.gad7[0]) * fraction
        answered = datetime.combine(day, time(19, 30), tzinfo=UTC)
        previous_steps = daily_steps.get(day - timedelta(days=1), steps_mean)
        mood = 8.5 - phq9 / 4.0 + 1.2 * math.tanh((previous_steps - steps_mean) / 2500.0) + rng.normal(0, 0.5)
        reports.append(
            _report(
                pseudonym,
                day,
                "mood",
                common_pb2.SYMPTOM_INSTRUMENT_MOOD,
                [],
                round(min(10.0, max(0.0, mood)), 1),
                answered,
            )
        )
        if day_index % 7 == 6:
            last = day_index >= history_days - 7
            item9 = patient.latest_item9 if last else 0
            total = round(phq9 + rng.normal(0, 1.0))
            reports.append(
                _report(
                    pseudonym,
                    day,
                    "phq9",
                    common_pb2.SYMPTOM_INSTRUMENT_PHQ9,
                    _items(total, rng, 9, fixed_last=item9),
                    None,
                    answered,
                )
            )
        if day_index % 14 == 13:
            total = round(gad7 + rng.normal(0, 1.0))
            reports.append(
                _report(
                    pseudonym,
                    day,
                    "gad7",
                    common_pb2.SYMPTOM_INSTRUMENT_GAD7,
                    _items(total, rng, 7),
                    None,
                    answered,
                )
            )
    return DemoRecords(readings, [(key, value) for value in reports])


def _report(
    pseudonym: str,
    day: date,
    kind: str,
    instrument: common_pb2.SymptomInstrument.ValueType,
    items: list[int],
    total: float | None,
    answered: datetime,
) -> bytes:
    event = events_pb2.SymptomReported(
        event_id=_event_id(pseudonym, kind, day),
        occurred_at=_timestamp(answered + timedelta(minutes=1)),
        patient=common_pb2.PatientRef(pseudonym=pseudonym),
        instrument=instrument,
        item_responses=items,
        reported_at=_timestamp(answered),
        source="app",
    )
    if total is not None:
        event.total = total
    return json_format.MessageToJson(event, indent=None).encode()


async def _produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024, acks="all"
    )
    await producer.start()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _set_clinical_data(
    stub: twin_pb2_grpc.TwinServiceAsyncStub, patient: DemoPatient, pseudonym: str, *, timeout: float
) -> None:
    ref = common_pb2.PatientRef(pseudonym=pseudonym)
    twin: twin_pb2.Twin | None = None
    deadline = asyncio.get_running_loop().time() + timeout
    while twin is None:
        try:
            twin = (await stub.GetTwin(twin_pb2.GetTwinRequest(patient=ref), timeout=5.0)).twin
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.NOT_FOUND or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
    wanted = [
        common_pb2.Medication(
            name=name,
            rxnorm_code=code,
            daily_dose=common_pb2.Quantity(value=dose, unit="mg"),
            indication="major depressive disorder",
        )
        for name, code, dose in patient.medications
    ]
    current = sorted((m.name, m.daily_dose.value) for m in twin.medications)
    if current != sorted((m.name, m.daily_dose.value) for m in wanted):
        await stub.SetMedications(
            twin_pb2.SetMedicationsRequest(patient=ref, medications=wanted), timeout=10.0
        )
    if patient.genotype and not twin.HasField("genotype"):
        calls = pharmacogenomics_pb2.OutsideCalls(
            calls=[
                pharmacogenomics_pb2.OutsideCall(gene=g, diplotype=d, source="demo lab")
                for g, d in patient.genotype
            ]
        )
        await stub.RecordGenotype(
            twin_pb2.RecordGenotypeRequest(patient=ref, outside_calls=calls), timeout=10.0
        )


async def load_demo(
    *,
    bootstrap: str,
    twin_address: str,
    pseudonym_key: bytes | str,
    shared_actigraphy: Path | None,
    days: int = 14,
    today: date | None = None,
    timeout: float = 120.0,
) -> list[tuple[DemoPatient, str]]:
    """Send every demo patient's data to the fleet; the patients with their pseudonyms."""
    today = today or datetime.now(UTC).date()
    patients = demo_patients(shared_actigraphy, days=days)
    loaded = []
    readings: list[tuple[bytes, bytes]] = []
    reports: list[tuple[bytes, bytes]] = []
    for patient in patients:
        pseudonym = patient.pseudonym(pseudonym_key)
        records = demo_records(patient, pseudonym, today=today)
        readings.extend(records.readings)
        reports.extend(records.reports)
        loaded.append((patient, pseudonym))
    await _produce(bootstrap, SYMPTOM_REPORTS, reports)
    async with grpc.aio.insecure_channel(twin_address) as channel:
        stub = twin_pb2_grpc.TwinServiceStub(channel)
        await asyncio.gather(*(_set_clinical_data(stub, p, s, timeout=timeout) for p, s in loaded))
    await _produce(bootstrap, DEVICE_READINGS, readings)
    return loaded

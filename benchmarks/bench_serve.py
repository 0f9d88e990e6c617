"""Load on `kaprules serve`: concurrent clients over real HTTP, p50/p99 latency and req/s.

Starts ``kaprules serve`` (kap-standard@2) in a subprocess on a loopback port, then drives
it with CLIENTS threads, each on its own keep-alive connection, each call a hook call for
a patient with 30 held sessions (an Encounter, a last-oral-intake Observation and a blood
pressure panel each) and one proposed appointment. Tokens are signed before the clock
starts, one per call, so the service checks each fully (signature, claims, replay).

    python benchmarks/bench_serve.py [--clients 20] [--calls 40]

Needs the serve extra. Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

ISS = "https://ehr.example.org/"
LOINC = "http://loinc.org"
ESCORT = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def patient(sessions: int) -> dict[str, Any]:
    """A hook call: ``sessions`` held sessions with their data, and one proposal."""
    first = dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    appointments, encounters, observations = [], [], []
    for n in range(sessions):
        start = first + dt.timedelta(days=3 * n)
        appointments.append(
            {
                "resourceType": "Appointment",
                "id": f"a{n}",
                "status": "fulfilled",
                "start": start.isoformat(),
                "participant": [
                    {"actor": {"reference": "Practitioner/t1"}, "status": "accepted"},
                    {
                        "type": [{"coding": [{"system": ESCORT, "code": "ESC"}]}],
                        "actor": {"reference": "RelatedPerson/r1"},
                        "status": "accepted",
                    },
                ],
            }
        )
        encounters.append(
            {
                "resourceType": "Encounter",
                "id": f"e{n}",
                "status": "finished",
                "class": {"code": "AMB"},
                "appointment": [{"reference": f"Appointment/a{n}"}],
            }
        )
        observations += [
            {
                "resourceType": "Observation",
                "status": "final",
                "encounter": {"reference": f"Encounter/e{n}"},
                "code": {"coding": [{"system": LOINC, "code": "67517-3"}]},
                "valueDateTime": (start - dt.timedelta(hours=6)).isoformat(),
            },
            {
                "resourceType": "Observation",
                "status": "final",
                "encounter": {"reference": f"Encounter/e{n}"},
                "effectiveDateTime": (start - dt.timedelta(minutes=10)).isoformat(),
                "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
                "component": [
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                        "valueQuantity": {"value": 124},
                    },
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                        "valueQuantity": {"value": 80},
                    },
                ],
            },
        ]
    proposed = dict(appointments[0], id="new", status="proposed")
    proposed["start"] = (first + dt.timedelta(days=3 * sessions + 1)).isoformat()

    def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in resources],
        }

    return {
        "hook": "appointment-book",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/t1", "patientId": "p1", "appointments": [proposed]},
        "prefetch": {
            "appointments": bundle(appointments),
            "encounters": bundle(encounters),
            "observations": bundle(observations),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--calls", type=int, default=40, help="calls per client")
    parser.add_argument("--sessions", type=int, default=30)
    args = parser.parse_args()

    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    folder = Path(tempfile.mkdtemp())
    (folder / "keys.json").write_text(json.dumps({"keys": [public | {"kid": "k"}]}))
    (folder / "issuers.toml").write_text(f'[[issuers]]\niss = "{ISS}"\njwks = "keys.json"\n')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "kaprules", "serve", "--protocol", "kap-standard@2",
        "--issuers", str(folder / "issuers.toml"), "--port", str(port),
        "--timezone", "America/Denver", "--max-body-bytes", str(8 * 1024 * 1024),
    ]  # fmt: skip
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        body = json.dumps(patient(args.sessions)).encode()
        aud = f"{base}/cds-services/kap-standard"
        now = int(time.time())

        def signed() -> str:
            claims = {
                "iss": ISS,
                "aud": aud,
                "exp": now + 900,
                "iat": now,
                "jti": str(uuid.uuid4()),
            }
            return jwt.encode(claims, key, algorithm="ES384", headers={"kid": "k"})

        tokens = [[signed() for _ in range(args.calls)] for _ in range(args.clients)]
        warm = http.client.HTTPConnection("127.0.0.1", port)
        warm.request(
            "POST", "/cds-services/kap-standard", body, {"Authorization": f"Bearer {signed()}"}
        )
        answer = warm.getresponse()
        assert answer.status == 200, answer.read()
        answer.read()
        warm.close()

        latencies: list[float] = []
        lock = threading.Lock()
        failures = []

        def client(mine: list[str]) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port)
            for bearer in mine:
                started = time.perf_counter()
                headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
                connection.request("POST", "/cds-services/kap-standard", body, headers)
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if response.status != 200:
                        failures.append(response.status)
            connection.close()

        threads = [threading.Thread(target=client, args=(mine,)) for mine in tokens]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(10)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000
    print(
        f"{len(latencies)} calls, {args.clients} clients, {args.sessions}-session patient, "
        f"{len(body)} bytes a call, {os.cpu_count()} cores: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"{len(latencies) / wall:.0f} req/s, {len(failures)} failed"
    )


if __name__ == "__main__":
    main()
